// views/sweep.ts — the Sweep view: a job for a whole space or a pasted list
// (POST /v1/jobs), its progress live from the event stream, a histogram of
// the scores as their rows arrive (GET .../results?after=N, NDJSON), cancel
// (DELETE) and the results as CSV; the jobs the server holds, to watch again.
import { ApiError, call, followJob, type Job, type JobRequest, type JobRow, type ScoreRequest } from "../api/client";
import { api, base } from "../app";
import { Chart, histogram } from "../charts";
import { download, eps, h, hideError, showError } from "../ui";

const EXAMPLE = [
  "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
  "|skip_connect~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|",
  "|avg_pool_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|nor_conv_1x1~0|skip_connect~1|nor_conv_3x3~2|",
].join("\n");

let chart: Chart | null = null;
let watching: AbortController | null = null;

/** Pasted lines -> items: a line starting with `{` is a ScoreRequest, any
 *  other an NB201 cell string; blank lines and `#` comments are skipped.
 *  lineOf[i] is the 1-based line of items[i]. */
export function parseList(text: string): { items: ScoreRequest[]; lineOf: number[] } {
  const items: ScoreRequest[] = [], lineOf: number[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    if (line.startsWith("{")) {
      try {
        items.push(JSON.parse(line) as ScoreRequest);
      } catch (e) {
        throw new ApiError(400, { error: `line ${i + 1}: not JSON (${String(e)})`, code: "invalid_json", field: `items[${items.length}]` }, "");
      }
    } else items.push({ space: "nb201", arch: line });
    lineOf.push(i + 1);
  });
  return { items, lineOf };
}

export function renderSweep(root: HTMLElement): void {
  const whole = h("input", { type: "radio", name: "src", id: "src-all", value: "all" });
  const pasted = h("input", { type: "radio", name: "src", id: "src-list", value: "list", checked: true });
  const spaceSel = h("select", { id: "sweep-space", "data-field": "space", "aria-label": "space to sweep" }, h("option", { value: "nb201" }, "nb201 (15,625 cells)"), h("option", { value: "nb101" }, "nb101 (423,624 cells)"));
  const ta = h("textarea", { id: "sweep-list", rows: 10, cols: 90, class: "mono", "data-field": "items", spellcheck: "false", "aria-label": "architectures, one per line" });
  ta.value = EXAMPLE;
  const sizeIn = h("input", { id: "sweep-batch-size", type: "number", min: 1, step: 1, placeholder: "all", size: 6, "data-field": "batch_size" });
  const labelIn = h("input", { id: "sweep-label", size: 24, placeholder: "optional", "data-field": "label" });
  const startBtn = h("button", { type: "submit", class: "primary", id: "sweep-start" }, "Start job");
  const errBox = h("div", { class: "error", role: "alert", hidden: true, "data-testid": "error" });
  const form = h(
    "form",
    { class: "sweep-form", "aria-label": "Start a sweep job" },
    h("fieldset", {}, h("legend", {}, "What to score"),
      h("label", {}, pasted, " a list: one NB201 cell string or one JSON score request per line"),
      h("div", {}, ta),
      h("label", {}, whole, " a whole space "), spaceSel),
    h("fieldset", { class: "opts" }, h("legend", {}, "Options"), h("label", {}, "batch size ", sizeIn), h("label", {}, "label ", labelIn)),
    h("p", {}, startBtn),
    errBox,
  );
  const status = h("div", { class: "card job", hidden: true, "aria-live": "polite" });
  const jobsBox = h("section", { class: "jobs" });
  root.replaceChildren(h("h2", {}, "Sweep"), form, status, jobsBox);

  async function listJobs(): Promise<void> {
    try {
      const r = await call(base(), () => api().GET("/v1/jobs"));
      const rows = r.jobs.slice(0, 20).map((j) =>
        h("tr", {}, h("td", { class: "mono" }, j.id), h("td", {}, j.label ?? ""), h("td", {}, j.status), h("td", { class: "num" }, `${j.done} / ${j.total}`),
          h("td", {}, h("button", { type: "button", onclick: () => watch(j) }, "Watch"))),
      );
      jobsBox.replaceChildren(h("h3", {}, `Jobs on this server (${r.total})`),
        rows.length ? h("table", { class: "data" }, h("thead", {}, h("tr", {}, ...["id", "label", "status", "done", ""].map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, ...rows)) : h("p", { class: "hint" }, "none yet"));
    } catch (e) {
      jobsBox.replaceChildren(h("p", { class: "hint" }, `jobs unavailable: ${e instanceof Error ? e.message : String(e)}`));
    }
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    hideError(errBox, form);
    let req: JobRequest;
    let lineOf: number[] = [];
    try {
      if (whole.checked) req = { space: spaceSel.value, all: true };
      else {
        const list = parseList(ta.value);
        lineOf = list.lineOf;
        req = { items: list.items };
      }
      if (sizeIn.value) req.batch_size = Number(sizeIn.value);
      if (labelIn.value) req.label = labelIn.value;
      startBtn.disabled = true;
      const job = await call(base(), () => api().POST("/v1/jobs", { body: req }));
      void listJobs();
      watch(job);
    } catch (e) {
      showError(errBox, form, e);
      // items[3].arch: name the pasted line too.
      const m = e instanceof ApiError ? /^items\[(\d+)\]/.exec(e.field ?? "") : null;
      if (m && lineOf[Number(m[1])]) errBox.append(h("span", { class: "err-field" }, ` (line ${lineOf[Number(m[1])]} of the list)`));
    } finally {
      startBtn.disabled = false;
    }
  });

  function watch(job: Job): void {
    watching?.abort();
    const ctl = new AbortController();
    watching = ctl;
    const values: number[] = [];
    let nan = 0, failed = 0, last = -1, fetching = false, again = false, finished = false;
    const bar = h("progress", { max: Math.max(1, job.total), value: job.done, id: "sweep-progress", "aria-label": "job progress" });
    const text = h("span", { "data-testid": "job-progress" });
    const state = h("strong", { "data-testid": "job-status" }, job.status);
    const counts = h("span", { "data-testid": "job-counts" });
    const cancelBtn = h("button", { type: "button", id: "sweep-cancel", onclick: async () => {
      try {
        await call(base(), () => api().DELETE("/v1/jobs/{id}", { params: { path: { id: job.id } } }));
      } catch (e) {
        showError(errBox, form, e);
      }
    } }, "Cancel");
    const dlBtn = h("button", { type: "button", id: "sweep-download", onclick: async () => {
      try {
        const csv = await call(base(), () => api().GET("/v1/jobs/{id}/results", { params: { path: { id: job.id }, query: { format: "csv" } }, parseAs: "text" }));
        download(`epsinas-job-${job.id}.csv`, csv);
      } catch (e) {
        showError(errBox, form, e);
      }
    } }, "Download results (CSV)");
    const canvas = h("canvas", { id: "histogram", role: "img", "aria-label": "histogram of epsilon" });
    status.hidden = false;
    status.replaceChildren(
      h("h3", {}, `Job ${job.id}`, job.label ? ` — ${job.label}` : ""),
      h("p", {}, state, " ", text),
      bar,
      h("p", {}, cancelBtn, " ", dlBtn, " ", counts),
      h("div", { class: "chart-box" }, canvas),
    );
    chart?.destroy();
    chart = new Chart(canvas, {
      type: "bar",
      data: { labels: [], datasets: [{ label: "cells", data: [], backgroundColor: "#1f4e79" }] },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        plugins: { legend: { display: false } },
        scales: { x: { title: { display: true, text: "epsilon (NaN not counted)" } }, y: { title: { display: true, text: "cells" }, beginAtZero: true, ticks: { precision: 0 } } },
      },
    });

    const progress = (done: number, total: number, rate?: number, eta?: number | null) => {
      bar.max = Math.max(1, total);
      bar.value = done;
      text.textContent = `${done.toLocaleString("en-US")} / ${total.toLocaleString("en-US")}` + (rate ? `, ${rate.toFixed(1)} /s` : "") + (eta ? `, about ${Math.ceil(eta)} s left` : "");
    };
    progress(job.done, job.total);

    // New rows since the last fetch; one fetch at a time, one more if
    // progress arrived meanwhile.
    async function pull(): Promise<void> {
      if (fetching) {
        again = true;
        return;
      }
      fetching = true;
      try {
        do {
          again = false;
          const text = await call(base(), () => api().GET("/v1/jobs/{id}/results", { params: { path: { id: job.id }, query: { after: last, format: "ndjson" } }, parseAs: "text", signal: ctl.signal }));
          for (const line of text.split("\n")) {
            if (!line) continue;
            const row = JSON.parse(line) as JobRow;
            last = Math.max(last, row.index);
            if (row.error) failed++;
            else if (row.epsilon === null) nan++;
            else values.push(row.epsilon);
          }
          // About 2 sqrt(n) bins, 5 to 40: readable for 20 cells and for 15,625.
          const { labels, counts: c } = histogram(values, Math.max(5, Math.min(40, Math.round(2 * Math.sqrt(values.length)))));
          chart!.data.labels = labels;
          chart!.data.datasets[0].data = c;
          chart!.update();
          counts.textContent = `${values.length} scored, ${nan} NaN, ${failed} failed` + (values.length ? `; best epsilon ${eps(Math.max(...values))}` : "");
        } while (again);
      } catch (e) {
        if (!ctl.signal.aborted) showError(errBox, form, e);
      } finally {
        fetching = false;
      }
    }

    followJob(api(), job.id, (ev) => {
      const d = JSON.parse(ev.data) as Partial<Job> & { rate?: number };
      if (d.status) state.textContent = d.status;
      progress(d.done ?? 0, d.total ?? job.total, d.rate ?? d.rate_per_s, d.eta_s);
      if (ev.event === "end") {
        finished = true;
        cancelBtn.disabled = true;
        status.dataset.final = d.status ?? "";
      }
      void pull();
    }, ctl.signal)
      .then(() => {
        if (!finished && !ctl.signal.aborted) state.textContent += " (event stream closed; Watch to reconnect)";
        void listJobs();
      })
      .catch((e) => {
        if (!ctl.signal.aborted) showError(errBox, form, e);
      });
  }

  void listJobs();
}
