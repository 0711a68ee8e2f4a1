// Runs a callback at most once per interval, always once more after the last call: floods of
// events (thousands of devices reconnecting) re-render the list a few times a second, not per event.

export function throttle(callback: () => void, intervalMs: number): () => void {
  let lastRun = -Infinity;
  let queued = false;

  const run = () => {
    queued = false;
    lastRun = Date.now();
    callback();
  };

  return () => {
    if (queued) return;
    queued = true;
    setTimeout(run, Math.max(0, lastRun + intervalMs - Date.now()));
  };
}
