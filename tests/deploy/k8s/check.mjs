// check.mjs - Mark's Kubernetes manifests, checked as a cluster would.
//
//   node check.mjs FILE...   (YAML streams, e.g. `kubectl kustomize deploy/k8s`)
//
// 1. Every object is validated against the Kubernetes OpenAPI schema of its
//    apiVersion and kind (kubernetes-models); an unknown kind fails.
// 2. Each service's Secret reaches only its owner (as an env reference, an
//    envFrom or a volume); the bus key reaches every Mark workload.
// 3. Every workload's containers set resources and probes (a worker has a
//    readiness probe at least), and every Deployment selects its own pods.
// Prints one "ok <check>" line per check passed, or "FAIL ..." lines, and
// exits non-zero on any failure.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const owners = {
  "auth-secrets": ["auth"],
  "llm-secrets": ["llm"],
  "executor-secrets": ["executor-worker"],
  "metadata-secrets": ["metadata"],
  "postgres-dev-secrets": ["postgres"],
  "mark-bus-key": null, // every Mark workload
};

const failures = [];
const fail = (m) => failures.push(m);
const objects = [];
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length) fail(`${file}: YAML: ${doc.errors[0].message}`);
    const o = doc.toJS();
    if (o) objects.push({ file, o });
  }
}
if (objects.length === 0) fail("no objects");

// 1. Schemas.
for (const { file, o } of objects) {
  const [group, version] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : [null, o.apiVersion];
  const path = group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`;
  const name = `${file}: ${o.kind} ${o.metadata?.name}`;
  let mod;
  try {
    mod = await import(path);
  } catch {
    fail(`${name}: unknown apiVersion ${o.apiVersion}`);
    continue;
  }
  const Model = mod[o.kind];
  if (!Model) {
    fail(`${name}: unknown kind in ${o.apiVersion}`);
    continue;
  }
  try {
    new Model(o).validate();
  } catch (e) {
    fail(`${name}: ${e.message}`);
  }
}
if (!failures.length) console.log(`ok schemas: ${objects.length} objects valid`);

// 2. Secrets reach only their owners.
const workloads = objects.filter(({ o }) => ["Deployment", "StatefulSet", "Job", "DaemonSet"].includes(o.kind));
const before = failures.length;
const uses = new Map(); // secret -> set of workload names
for (const { o } of workloads) {
  const spec = o.spec.template.spec;
  const names = new Set();
  for (const v of spec.volumes ?? []) if (v.secret) names.add(v.secret.secretName);
  for (const c of [...(spec.containers ?? []), ...(spec.initContainers ?? [])]) {
    for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef) names.add(e.valueFrom.secretKeyRef.name);
    for (const e of c.envFrom ?? []) if (e.secretRef) names.add(e.secretRef.name);
  }
  for (const n of names) {
    if (!uses.has(n)) uses.set(n, new Set());
    uses.get(n).add(o.metadata.name);
  }
}
const markWorkloads = workloads.filter(({ o }) => o.metadata.labels?.["app.kubernetes.io/part-of"] === "mark" && o.metadata.name !== "postgres").map(({ o }) => o.metadata.name);
for (const [secret, who] of uses) {
  if (!(secret in owners)) {
    fail(`secret ${secret} is used by ${[...who]} but has no known owner`);
    continue;
  }
  const allowed = owners[secret] ?? markWorkloads;
  for (const w of who) if (!allowed.includes(w)) fail(`secret ${secret} reaches ${w}, not only ${allowed}`);
  if (owners[secret] === null)
    for (const w of markWorkloads) if (!who.has(w)) fail(`the bus key does not reach ${w}`);
}
if (failures.length === before) console.log(`ok secrets: each reaches only its owner (${uses.size} secrets, ${workloads.length} workloads)`);

// 3. Resources, probes and selectors.
const before3 = failures.length;
for (const { o } of workloads) {
  const spec = o.spec.template.spec;
  const sel = o.spec.selector?.matchLabels ?? {};
  const labels = o.spec.template.metadata?.labels ?? {};
  for (const [k, v] of Object.entries(sel)) if (labels[k] !== v) fail(`${o.metadata.name}: selector ${k}=${v} does not select its pods`);
  for (const c of spec.containers) {
    if (!c.resources?.requests || !c.resources?.limits) fail(`${o.metadata.name}/${c.name}: no resource requests and limits`);
    if (!c.readinessProbe) fail(`${o.metadata.name}/${c.name}: no readiness probe`);
  }
}
if (failures.length === before3) console.log(`ok workloads: resources, readiness probes and selectors set`);

for (const f of failures) console.log(`FAIL ${f}`);
console.log(`k8s_check: ${failures.length ? "FAILED" : "passed"} (${objects.length} objects)`);
process.exit(failures.length ? 1 : 0);
