// api/client.ts — the TypeScript client of the epsinas API: openapi-fetch over
// the types openapi-typescript generates from openapi.yaml at build time
// (schema.d.ts, not committed), so a spec change that the dashboard does not
// follow fails `tsc --noEmit`. Also: the API's error shape as an exception,
// and the jobs event stream (SSE) read through the same client, since
// EventSource can send neither a token nor go through openapi-fetch.
import createClient, { type Client } from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type ScoreRequest = Schemas["ScoreRequest"];
export type ScoreResult = Schemas["ScoreResult"];
export type ApiErrorBody = Schemas["Error"];
export type Job = Schemas["Job"];
export type JobRequest = Schemas["JobRequest"];
export type JobRow = Schemas["JobRow"];
export type Spaces = Schemas["Spaces"];
export type Batches = Schemas["Batches"];
export type ServerMetadata = Schemas["ServerMetadata"];
export type EpsinasClient = Client<paths>;

export interface ClientOptions {
  /** Where the API is; "" means the page's own origin. */
  baseUrl?: string;
  /** Sent as `Authorization: Bearer <token>` (servers run with --api-token). */
  token?: string;
}

export function createEpsinasClient(opts: ClientOptions = {}): EpsinasClient {
  const headers: Record<string, string> = {};
  if (opts.token) headers["Authorization"] = `Bearer ${opts.token}`;
  return createClient<paths>({ baseUrl: (opts.baseUrl ?? "").replace(/\/+$/, ""), headers });
}

/** An answer in the API's error shape (or a transport failure, status 0). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field?: string;
  readonly line?: number;
  readonly column?: number;
  constructor(status: number, body: Partial<ApiErrorBody> | undefined, fallback: string) {
    super(body?.error ?? fallback);
    this.name = "ApiError";
    this.status = status;
    this.code = body?.code ?? (status ? `http_${status}` : "network_error");
    this.field = body?.field || undefined;
    this.line = body?.line;
    this.column = body?.column;
  }
}

/** Unwraps an openapi-fetch result: the data, or throws ApiError. */
export function unwrap<T>(r: { data?: T; error?: unknown; response: Response }): T {
  if (r.error !== undefined || !r.response.ok) {
    const body = (typeof r.error === "object" && r.error ? r.error : undefined) as Partial<ApiErrorBody> | undefined;
    throw new ApiError(r.response.status, body, `HTTP ${r.response.status} ${r.response.statusText}`);
  }
  return r.data as T;
}

/** Runs one call, turning a network failure (fetch throws) into ApiError. */
export async function call<T>(base: string, f: () => Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  let r;
  try {
    r = await f();
  } catch (e) {
    if (e instanceof DOMException && e.name === "AbortError") throw e;
    throw new ApiError(0, undefined, `cannot reach the API at ${base || location.origin} (${String(e)})`);
  }
  return unwrap(r);
}

export interface SseEvent {
  event: string;
  data: string;
}

/** Reads GET /v1/jobs/{id}/events until the stream ends or signal aborts;
 *  onEvent gets each `progress` and the final `end` event. */
export async function followJob(
  client: EpsinasClient,
  id: string,
  onEvent: (e: SseEvent) => void,
  signal?: AbortSignal,
): Promise<void> {
  const r = await client.GET("/v1/jobs/{id}/events", { params: { path: { id } }, parseAs: "stream", signal });
  if (!r.response.ok || !r.data) unwrap(r);
  const reader = (r.data as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream() as unknown as TransformStream<Uint8Array, string>).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let sep;
    while ((sep = buf.search(/\r?\n\r?\n/)) >= 0) {
      const block = buf.slice(0, sep);
      buf = buf.slice(sep).replace(/^\r?\n\r?\n/, "");
      const ev: SseEvent = { event: "message", data: "" };
      const data: string[] = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith("event:")) ev.event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      ev.data = data.join("\n");
      if (data.length) onEvent(ev);
    }
  }
}

/** Parses Prometheus text (GET /metrics) into name{labels} -> value. */
export function parseMetrics(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const sp = line.lastIndexOf(" ");
    if (sp > 0) m.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return m;
}
