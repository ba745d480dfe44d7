// Numbers and times as the dashboard prints them. Pure; `now` is passed in.

/** Megabytes as "812 MB", "6.5 GB", "80 GB". */
export const formatMb = (mb: number): string => {
  if (!Number.isFinite(mb)) return "—";
  if (Math.abs(mb) < 1024) return `${Math.round(mb)} MB`;
  const gb = mb / 1024;
  return `${gb >= 100 || Number.isInteger(gb) ? gb.toFixed(0) : gb.toFixed(1)} GB`;
};

/** "just now", "12 s ago", "4 min ago", "3 h ago", "2 d ago"; "never" for null. */
export const formatAgo = (iso: string | null, now: number): string => {
  if (iso === null) return "never";
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return "—";
  const seconds = Math.max(0, (now - at) / 1000);
  if (seconds < 1) return "just now";
  if (seconds < 60) return `${Math.floor(seconds)} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86_400)} d ago`;
};

/** Milliseconds as "840 ms", "2.4 s", "3 min 5 s"; "—" for null. */
export const formatMs = (ms: number | null): string => {
  if (ms === null || !Number.isFinite(ms)) return "—";
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
};

/** Local wall-clock time "14:03:07". */
export const formatClock = (iso: string): string => {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return "—";
  return [at.getHours(), at.getMinutes(), at.getSeconds()]
    .map((part) => String(part).padStart(2, "0"))
    .join(":");
};

/** A ratio as "12.5 %" (one decimal below 10 %, none above); "—" without a denominator. */
export const formatPercent = (part: number, whole: number): string => {
  if (whole <= 0) return "—";
  const pct = (part / whole) * 100;
  return `${pct > 0 && pct < 10 ? pct.toFixed(1) : Math.round(pct)} %`;
};

/** Requests per second: "0.02/s", "3.4/s", "120/s". */
export const formatRate = (perSecond: number): string => {
  if (perSecond === 0) return "0/s";
  if (perSecond < 0.1) return `${perSecond.toFixed(3)}/s`;
  if (perSecond < 10) return `${perSecond.toFixed(2)}/s`;
  return `${Math.round(perSecond)}/s`;
};
