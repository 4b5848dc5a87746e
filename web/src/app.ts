// app.ts — state the views share: the API settings (base URL and token,
// kept in localStorage; `?api=URL` on the page's address sets the base URL),
// the client built from them, and the server's spaces and batches (fetched
// once per settings change).
import { call, createEpsinasClient, type Batches, type EpsinasClient, type Spaces } from "./api/client";

const KEY = "epsinas.settings";

export interface Settings {
  baseUrl: string;
  token: string;
}

function load(): Settings {
  let s: Settings = { baseUrl: "", token: "" };
  try {
    s = { ...s, ...JSON.parse(localStorage.getItem(KEY) ?? "{}") };
  } catch {
    /* a damaged entry: start from the defaults */
  }
  const q = new URLSearchParams(location.search).get("api");
  if (q !== null) s.baseUrl = q;
  return s;
}

let settings = load();
let client = createEpsinasClient(settings);
let info: Promise<{ spaces: Spaces; batches: Batches }> | null = null;

export function getSettings(): Settings {
  return { ...settings };
}

export function setSettings(s: Settings): void {
  settings = { baseUrl: s.baseUrl.trim(), token: s.token.trim() };
  localStorage.setItem(KEY, JSON.stringify(settings));
  client = createEpsinasClient(settings);
  info = null;
}

export function api(): EpsinasClient {
  return client;
}

export function base(): string {
  return settings.baseUrl;
}

/** GET /v1/spaces and /v1/batches, once per settings. */
export function serverInfo(): Promise<{ spaces: Spaces; batches: Batches }> {
  if (!info) {
    const c = client;
    info = Promise.all([call(base(), () => c.GET("/v1/spaces")), call(base(), () => c.GET("/v1/batches"))]).then(
      ([spaces, batches]) => ({ spaces, batches }),
    );
    info.catch(() => (info = null));
  }
  return info;
}
