// views/service.ts — the Service view: health (live, ready), version and job
// limits (/v2), the loaded batches and spaces, and a few metrics from
// /metrics: cache hit rate, queue depth, requests in flight. Refreshes
// every 5 s while shown.
import { call, parseMetrics } from "../api/client";
import { api, base, serverInfo } from "../app";
import { h, int, showError } from "../ui";

let timer: number | undefined;

export function stopService(): void {
  if (timer !== undefined) clearInterval(timer);
  timer = undefined;
}

async function probe(path: "/livez" | "/readyz"): Promise<string> {
  try {
    const r = await api().GET(path, { parseAs: "text" });
    return r.response.ok ? "ok" : `HTTP ${r.response.status}`;
  } catch {
    return "unreachable";
  }
}

export function renderService(root: HTMLElement): void {
  const errBox = h("div", { class: "error", role: "alert", hidden: true, "data-testid": "error" });
  const health = h("dl", { class: "kv", "data-testid": "health" });
  const metrics = h("dl", { class: "kv", "data-testid": "metrics" });
  const batches = h("table", { class: "data", "data-testid": "batches" });
  const spaces = h("table", { class: "data" });
  const refresh = h("button", { type: "button", onclick: () => void load() }, "Refresh");
  root.replaceChildren(
    h("h2", {}, "Service"),
    h("p", {}, refresh, h("span", { class: "hint" }, ` API: ${base() || location.origin}`)),
    errBox,
    h("div", { class: "cols" }, h("section", { class: "card" }, h("h3", {}, "Health"), health), h("section", { class: "card" }, h("h3", {}, "Metrics"), metrics)),
    h("h3", {}, "Batches"),
    batches,
    h("h3", {}, "Spaces"),
    spaces,
  );
  const kv = (dl: HTMLElement, pairs: [string, string][]) => dl.replaceChildren(...pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { "data-key": k }, v)]));

  async function load(): Promise<void> {
    try {
      const [meta, live, ready] = await Promise.all([call(base(), () => api().GET("/v2")), probe("/livez"), probe("/readyz")]);
      const jobs = (meta.jobs ?? {}) as Record<string, unknown>;
      kv(health, [
        ["live", live],
        ["ready", ready],
        ["name", meta.name],
        ["version", meta.version],
        ["extensions", meta.extensions.join(", ")],
        ...Object.entries(jobs).map(([k, v]) => [`jobs.${k}`, String(v)] as [string, string]),
      ]);
      const text = await call(base(), () => api().GET("/metrics", { parseAs: "text" }));
      const m = parseMetrics(text);
      const sum = (prefix: string) => [...m].filter(([k]) => k === prefix || k.startsWith(prefix + "{")).reduce((a, [, v]) => a + v, 0);
      const hits = sum("epsinas_cache_hits_total"), misses = sum("epsinas_cache_misses_total");
      kv(metrics, [
        ["cache hit rate", hits + misses ? `${((100 * hits) / (hits + misses)).toFixed(1)} % (${int(hits)} hits, ${int(misses)} misses)` : "no lookups yet"],
        ["cache entries", `${int(sum("epsinas_cache_entries"))} (${int(sum("epsinas_cache_bytes") / 1024)} KiB)`],
        ["queue depth", int(sum("epsinas_queue_depth"))],
        ["requests in flight", int(sum("epsinas_inflight_requests"))],
        ["computations", int(sum("epsinas_computations_total"))],
        ["requests", int(sum("epsinas_requests_total"))],
        ["rejected", int(sum("epsinas_rejected_total"))],
      ]);
      const info = await serverInfo();
      batches.replaceChildren(
        h("thead", {}, h("tr", {}, ...["name", "default of", "kind", "size", "shape", "source", "what it is", "hash"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, ...info.batches.batches.map((b) => h("tr", {},
          h("td", {}, b.name),
          h("td", {}, Object.entries(info.batches.defaults).filter(([, n]) => n === b.name).map(([sp]) => sp).join(", ")),
          h("td", {}, b.kind), h("td", { class: "num" }, b.size), h("td", {}, b.shape.join(" x ")),
          h("td", { class: "mono" }, b.source), h("td", {}, b.generator), h("td", { class: "mono" }, b.hash)))),
      );
      spaces.replaceChildren(
        h("thead", {}, h("tr", {}, ...["name", "title", "default weights", "default batch", "limits"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, ...info.spaces.spaces.map((s) => h("tr", {}, h("td", {}, s.name), h("td", {}, s.title), h("td", {}, s.weights.join(", ")),
          h("td", { class: "mono" }, s.default_batch + Object.entries(s.dataset_batches ?? {}).map(([d, b]) => `; ${d}: ${b}`).join("")), h("td", {}, s.limits)))),
      );
      errBox.hidden = true;
    } catch (e) {
      showError(errBox, root, e);
    }
  }
  void load();
  stopService();
  timer = window.setInterval(() => {
    if (document.visibilityState === "visible") void load();
  }, 5000);
}
