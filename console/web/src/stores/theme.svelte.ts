// Light, dark, or whatever the system prefers. The choice is a data attribute on <html> (the CSS
// reads it), remembered in localStorage.

export type ThemeChoice = "system" | "light" | "dark";

const KEY = "tether.theme";

class Theme {
  choice = $state<ThemeChoice>(read());

  constructor() {
    apply(this.choice);
  }

  set(choice: ThemeChoice): void {
    this.choice = choice;
    apply(choice);
    try {
      localStorage.setItem(KEY, choice);
    } catch {
      // Private mode: the choice lasts for this page only.
    }
  }

  /** light → dark → system → light. */
  cycle(): void {
    this.set(this.choice === "light" ? "dark" : this.choice === "dark" ? "system" : "light");
  }
}

function read(): ThemeChoice {
  try {
    const stored = localStorage.getItem(KEY);
    if (stored === "light" || stored === "dark") return stored;
  } catch {
    // Storage blocked: fall through to the system's preference.
  }
  return "system";
}

function apply(choice: ThemeChoice): void {
  if (choice === "system") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = choice;
}

export const theme = new Theme();
