// The console's URLs. The server answers every non-API path with index.html, so these survive a
// reload and can be bookmarked.

export type DeviceTab = "general" | "desktop" | "terminal" | "files" | "chat" | "events";

export type Route =
  | { screen: "devices" }
  | { screen: "device"; id: string; tab: DeviceTab }
  | { screen: "groups" }
  | { screen: "group"; id: string }
  | { screen: "users" }
  | { screen: "updates" }
  | { screen: "events" }
  | { screen: "account" }
  | { screen: "notFound"; path: string };

const TABS: readonly DeviceTab[] = ["general", "desktop", "terminal", "files", "chat", "events"];

export function parseRoute(pathname: string): Route {
  const parts = pathname.split("/").filter((p) => p !== "").map(safeDecode);
  const [first, second, third] = parts;
  switch (first) {
    case undefined:
    case "devices":
      if (second === undefined) return { screen: "devices" };
      if (third === undefined || (TABS as readonly string[]).includes(third)) {
        return { screen: "device", id: second, tab: (third as DeviceTab | undefined) ?? "general" };
      }
      break;
    case "groups":
      return second === undefined ? { screen: "groups" } : { screen: "group", id: second };
    case "users":
      return { screen: "users" };
    case "updates":
      return { screen: "updates" };
    case "events":
      return { screen: "events" };
    case "account":
      return { screen: "account" };
  }
  return { screen: "notFound", path: pathname };
}

export function routePath(route: Route): string {
  switch (route.screen) {
    case "devices":
      return "/devices";
    case "device":
      return `/devices/${encodeURIComponent(route.id)}${route.tab === "general" ? "" : `/${route.tab}`}`;
    case "groups":
      return "/groups";
    case "group":
      return `/groups/${encodeURIComponent(route.id)}`;
    case "users":
      return "/users";
    case "updates":
      return "/updates";
    case "events":
      return "/events";
    case "account":
      return "/account";
    case "notFound":
      return route.path;
  }
}

function safeDecode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}
