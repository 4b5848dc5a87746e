// validate-k8s.mjs — every document of the given Kubernetes manifests,
// validated offline against the API schemas that kubernetes-models ships
// (the OpenAPI schemas of the Kubernetes release it was generated from).
// Usage: node validate-k8s.mjs FILE.yaml...   Exit 1 on the first bad file.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

let checked = 0, failed = 0;
for (const file of process.argv.slice(2)) {
  const docs = parseAllDocuments(readFileSync(file, "utf8"));
  for (const [i, doc] of docs.entries()) {
    const where = `${file} document ${i + 1}`;
    if (doc.errors.length) { console.error(`${where}: YAML: ${doc.errors[0].message}`); failed++; continue; }
    const obj = doc.toJS();
    if (obj === null) continue; // an empty document between two '---'
    const { apiVersion, kind } = obj;
    let Model;
    try {
      Model = (await import(`kubernetes-models/${apiVersion}/${kind}`))[kind];
    } catch {
      console.error(`${where}: no schema for apiVersion ${apiVersion} kind ${kind}`); failed++; continue;
    }
    try {
      new Model(obj).validate();
      checked++;
      console.log(`ok ${where}: ${kind} ${obj.metadata?.name ?? ""}`);
    } catch (e) {
      console.error(`${where}: ${kind} ${obj.metadata?.name ?? ""}: ${e.message}`); failed++;
    }
  }
}
console.log(`${checked} manifests valid, ${failed} invalid`);
process.exit(failed ? 1 : 0);
