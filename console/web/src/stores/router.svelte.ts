// Client-side navigation with the History API: no reloads, and the back button works.

import { parseRoute, routePath } from "../lib/routes";
import type { Route } from "../lib/routes";

class Router {
  route = $state.raw<Route>(parseRoute(location.pathname));

  constructor() {
    window.addEventListener("popstate", () => {
      this.route = parseRoute(location.pathname);
    });
  }

  go(route: Route, replace = false): void {
    const path = routePath(route);
    if (path !== location.pathname) {
      if (replace) history.replaceState(null, "", path);
      else history.pushState(null, "", path);
    }
    this.route = route;
  }

  /** For `<a href onclick={router.link}>`: plain clicks navigate in place, modified ones open tabs. */
  link = (event: MouseEvent): void => {
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const anchor = event.currentTarget as HTMLAnchorElement;
    if (anchor.origin !== location.origin) return;
    event.preventDefault();
    this.go(parseRoute(anchor.pathname));
  };
}

export const router = new Router();
