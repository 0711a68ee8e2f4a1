// How times, durations and counts read in the console.

const numberFormat = new Intl.NumberFormat();

export function count(n: number): string {
  return numberFormat.format(n);
}

export function plural(n: number, one: string, many: string): string {
  return `${count(n)} ${n === 1 ? one : many}`;
}

/** "just now", "5 min ago", "3 h ago", "2 days ago", or a date past a week; "never" for 0. */
export function relativeTime(unixSecs: number, nowSecs: number): string {
  if (unixSecs <= 0) return "never";
  const age = Math.max(0, nowSecs - unixSecs);
  if (age < 45) return "just now";
  if (age < 3600) return `${Math.round(age / 60)} min ago`;
  if (age < 86_400) return `${Math.round(age / 3600)} h ago`;
  if (age < 7 * 86_400) return plural(Math.round(age / 86_400), "day", "days") + " ago";
  return new Date(unixSecs * 1000).toLocaleDateString();
}

/** 93784 → "1 d 2 h 3 min". */
export function duration(secs: number): string {
  const days = Math.floor(secs / 86_400);
  const hours = Math.floor((secs % 86_400) / 3600);
  const minutes = Math.floor((secs % 3600) / 60);
  const parts: string[] = [];
  if (days) parts.push(`${days} d`);
  if (hours) parts.push(`${hours} h`);
  if (minutes || parts.length === 0) parts.push(`${minutes} min`);
  return parts.join(" ");
}

export function dateTime(unixMillis: number): string {
  return new Date(unixMillis).toLocaleString();
}
