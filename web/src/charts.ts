// charts.ts — chart.js with only the parts the views use registered (keeps
// the bundle small): a scatter with a log x axis and a bar histogram.
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LogarithmicScale,
  PointElement,
  ScatterController,
  Tooltip,
} from "chart.js";

Chart.register(ScatterController, BarController, PointElement, BarElement, LinearScale, LogarithmicScale, CategoryScale, Tooltip, Legend);
Chart.defaults.animation = false;
Chart.defaults.font.size = 13;

export { Chart };

/** Histogram counts of values over nbins equal bins between their min and max. */
export function histogram(values: number[], nbins: number): { labels: string[]; counts: number[] } {
  if (!values.length) return { labels: [], counts: [] };
  let lo = Infinity, hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (hi === lo) hi = lo + 1e-9;
  const w = (hi - lo) / nbins;
  const counts = new Array<number>(nbins).fill(0);
  for (const v of values) counts[Math.min(nbins - 1, Math.floor((v - lo) / w))]++;
  const labels = counts.map((_, i) => (lo + (i + 0.5) * w).toPrecision(3));
  return { labels, counts };
}
