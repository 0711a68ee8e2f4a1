// The device list's search, filters and sort, kept across navigation (open a device, come back,
// and the list is as it was).

import { NO_FILTER } from "../lib/devices";
import type { DeviceFilter } from "../lib/devices";

export const deviceFilter: DeviceFilter = $state({ ...NO_FILTER });
