// validate.mjs — checks openapi.yaml against the OpenAPI 3.1 schema
// (@seriousme/openapi-schema-validator), then every response that
// tests/test_http.c saved (one JSON file per response: {method, path,
// status, content_type, body}) against the schema that openapi.yaml declares
// for that path, method and status (Ajv, JSON Schema 2020-12).
// Usage: node validate.mjs OPENAPI.yaml [RESPONSES_DIR]
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Validator } from "@seriousme/openapi-schema-validator";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import YAML from "yaml";

const [specPath, respDir] = process.argv.slice(2);
if (!specPath) {
  console.error("usage: node validate.mjs OPENAPI.yaml [RESPONSES_DIR]");
  process.exit(2);
}
const text = readFileSync(specPath, "utf8");
const validator = new Validator();
const res = await validator.validate(text);
if (!res.valid) {
  console.error("openapi: INVALID", JSON.stringify(res.errors, null, 2));
  process.exit(1);
}
console.log(`openapi: ${specPath} is a valid OpenAPI ${validator.version} document`);
if (!respDir) process.exit(0);

const doc = YAML.parse(text);
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addSchema({ ...doc, $id: "openapi.json" });

// "/v1/scores/{hash}" -> /^\/v1\/scores\/[^/]+$/
const templates = Object.keys(doc.paths).map((p) => ({
  path: p,
  re: new RegExp("^" + p.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{[^}]+\}/g, "[^/]+") + "$"),
}));
const ptr = (...parts) => parts.map((s) => String(s).replace(/~/g, "~0").replace(/\//g, "~1")).join("/");

let checked = 0, failed = 0;
const files = readdirSync(respDir).filter((f) => f.endsWith(".json")).sort();
for (const f of files) {
  const r = JSON.parse(readFileSync(join(respDir, f), "utf8"));
  const fail = (msg) => { failed++; console.error(`FAIL ${f} ${r.method} ${r.path} ${r.status}: ${msg}`); };
  const t = templates.find((x) => x.re.test(r.path));
  let ref;
  if (!t) {
    if (r.status !== 404) { fail("path not in openapi.yaml and status is not 404"); continue; }
    ref = "openapi.json#/components/schemas/Error";
  } else {
    const op = doc.paths[t.path][r.method.toLowerCase() === "head" ? "get" : r.method.toLowerCase()];
    if (!op) {
      if (r.method === "OPTIONS" && r.status === 204) { checked++; continue; } // CORS / Allow preflight
      if (r.status !== 405) { fail("method not in openapi.yaml and status is not 405"); continue; }
      ref = "openapi.json#/components/schemas/Error";
    } else {
      let resp = op.responses[String(r.status)];
      if (!resp) { fail(`status ${r.status} not documented`); continue; }
      let base = ptr("paths", t.path, r.method.toLowerCase(), "responses", r.status);
      if (resp.$ref) { base = resp.$ref.slice(2); resp = resp.$ref.slice(2).split("/").reduce((o, k) => o[k], doc); }
      const content = resp.content || {};
      const ct = (r.content_type || "").split(";")[0].trim();
      if (!Object.keys(content).length) {
        if (r.body !== null && r.body !== "") fail("documented without a body but has one");
        else checked++;
        continue;
      }
      if (!content[ct]) { fail(`content type '${ct}' not documented`); continue; }
      if (ct !== "application/json") { checked++; continue; }
      ref = "openapi.json#/" + base + "/" + ptr("content", ct, "schema");
    }
  }
  const validate = ajv.getSchema(ref) || ajv.compile({ $ref: ref });
  if (!validate(r.body)) fail(ajv.errorsText(validate.errors) + " body=" + JSON.stringify(r.body).slice(0, 300));
  else checked++;
}
console.log(`responses: ${checked} valid, ${failed} invalid (of ${files.length})`);
process.exit(failed || files.length === 0 ? 1 : 0);
