/** A timer handle, whatever the clock behind it (a fake one in tests). */
export type TimerHandle = ReturnType<typeof setTimeout>;

/**
 * The timers the neuron's lifecycle runs on (restart backoff, idle TTL, readiness polls),
 * injected so tests drive them with fake timers instead of sleeping.
 */
export interface Timers {
  set(callback: () => void, ms: number): TimerHandle;
  clear(handle: TimerHandle): void;
}

/**
 * The global timers, looked up at each call (so `vi.useFakeTimers` reaches them). They are
 * unref'd: a pending restart or idle unload never keeps a stopping neuron alive.
 */
export const systemTimers: Timers = {
  set: (callback, ms) => {
    const handle = setTimeout(callback, ms);
    handle.unref?.();
    return handle;
  },
  clear: (handle) => clearTimeout(handle),
};
