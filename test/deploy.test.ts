// deploy/: the Kubernetes manifests and the Dockerfiles agree with the server they run: ports,
// probe paths (routes the server answers), labels and selectors, the drain time, the metric
// names the endpoint picker and the autoscaler read, the model store volume, the build
// context (.dockerignore) holding what the Dockerfiles copy, and the container check
// (scripts/container-check.sh, which needs root and podman) building and asking what the image serves.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { DEFAULT_PORT, defaultSetting } from "../src/config.js";
import { renderPrometheus } from "../src/engine/metrics.js";
import { BUILTIN_MODEL } from "../src/models/builtin.js";
import type { ServerDeps } from "../src/server/context.js";
import { routeTable } from "../src/server/routes.js";
import { repoRoot } from "./helpers/models.js";
import { parseYamlDocuments } from "./helpers/yaml-subset.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;
const deployDir = path.join(repoRoot, "deploy");
const docs: Doc[] = readdirSync(path.join(deployDir, "kubernetes"))
  .filter((f) => f.endsWith(".yaml"))
  .flatMap((f) => parseYamlDocuments(readFileSync(path.join(deployDir, "kubernetes", f), "utf8")));
const find = (kind: string, name: string): Doc => {
  const doc = docs.find((d) => d.kind === kind && d.metadata.name === name);
  assert.ok(doc, `${kind}/${name}`);
  return doc;
};
/** Paths the server answers with GET (handlers are built, not called). */
const getPaths = new Set(routeTable({} as ServerDeps).filter((r) => r.method === "get").map((r) => r.path));
const metricFamilies = new Set([...renderPrometheus([]).matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]));
const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);
/** Go-style durations the manifests use ("25s", "2m") in seconds. */
const seconds = (d: string) => Number(/^(\d+)s$/.exec(d)?.[1] ?? Number(/^(\d+)m$/.exec(d)![1]) * 60);

describe("deploy/kubernetes", () => {
  const deployment = find("Deployment", "vllama");
  const pod = deployment.spec.template;
  const container = pod.spec.containers[0];
  const env = (name: string): string => container.env.find((e: Doc) => e.name === name)?.value;

  test("the container serves on the server's port, reachable from the pod network", () => {
    const http = container.ports.find((p: Doc) => p.name === "http");
    assert.equal(http.containerPort, DEFAULT_PORT);
    assert.equal(env("OLLAMA_HOST"), `0.0.0.0:${DEFAULT_PORT}`);
  });

  test("probes ask routes the server answers, on its port", () => {
    for (const probe of [container.readinessProbe, container.livenessProbe]) {
      assert.ok(getPaths.has(probe.httpGet.path), probe.httpGet.path);
      assert.equal(probe.httpGet.port, "http");
    }
    assert.equal(container.readinessProbe.httpGet.path, "/ready", "readiness drops while draining, liveness does not");
    assert.equal(container.livenessProbe.httpGet.path, "/health");
  });

  test("termination waits for the preStop pause, the drain and the engine's close", () => {
    const preStop = Number(container.lifecycle.preStop.exec.command[1]);
    const drain = seconds(env("VLLAMA_SHUTDOWN_TIMEOUT"));
    assert.ok(pod.spec.terminationGracePeriodSeconds >= preStop + drain + 5, `${pod.spec.terminationGracePeriodSeconds}s grace`);
  });

  test("non-root, model store on a volume where the server looks", () => {
    assert.equal(pod.spec.securityContext.runAsNonRoot, true);
    assert.ok(pod.spec.securityContext.runAsUser > 0);
    const mount = container.volumeMounts.find((m: Doc) => m.name === "models");
    assert.equal(mount.mountPath, env("VLLAMA_MODELS"));
    const claim = pod.spec.volumes.find((v: Doc) => v.name === "models").persistentVolumeClaim.claimName;
    find("PersistentVolumeClaim", claim);
  });

  test("Service, InferencePool and HTTPRoute select these pods on this port", () => {
    const labels = pod.metadata.labels;
    assert.ok(matches(deployment.spec.selector.matchLabels, labels));
    const service = find("Service", "vllama");
    assert.ok(matches(service.spec.selector, labels));
    assert.equal(service.spec.ports[0].targetPort, "http");
    const pool = find("InferencePool", "vllama");
    assert.equal(pool.apiVersion, "inference.networking.k8s.io/v1");
    assert.ok(matches(pool.spec.selector.matchLabels, labels));
    assert.deepEqual(pool.spec.targetPorts, [{ number: DEFAULT_PORT }]);
    const route = find("HTTPRoute", "vllama");
    assert.deepEqual(route.spec.rules[0].backendRefs, [{ group: "inference.networking.k8s.io", kind: "InferencePool", name: pool.metadata.name }]);
  });

  test("the endpoint picker is wired to the pool and reads metrics the server exports", () => {
    const pool = find("InferencePool", "vllama");
    const eppService = find("Service", pool.spec.endpointPickerRef.name);
    assert.ok(eppService.spec.ports.some((p: Doc) => p.port === pool.spec.endpointPickerRef.port.number));
    const epp = find("Deployment", "vllama-epp");
    assert.ok(matches(eppService.spec.selector, epp.spec.template.metadata.labels));
    const args: string[] = epp.spec.template.spec.containers[0].args;
    assert.ok(args.includes(`--pool-name=${pool.metadata.name}`));
    const metricArgs = args.filter((a) => /-metric=/.test(a));
    assert.equal(metricArgs.length, 2);
    for (const arg of metricArgs) assert.ok(metricFamilies.has(arg.split("=")[1]), arg);
    // The replicas' KV events go to the picker's service port.
    const kvEvents = eppService.spec.ports.find((p: Doc) => p.name === "kv-events");
    assert.equal(env("VLLAMA_KV_EVENTS_ENDPOINT"), `tcp://${eppService.metadata.name}:${kvEvents.port}`);
  });

  test("the autoscaler scales the Deployment on the queue the server exports", () => {
    const hpa = find("HorizontalPodAutoscaler", "vllama");
    assert.equal(hpa.spec.scaleTargetRef.name, deployment.metadata.name);
    const metric = hpa.spec.metrics[0].pods.metric.name;
    assert.equal(metric, "vllm_num_requests_waiting");
    assert.ok(metricFamilies.has(metric.replace(/^vllm_/, "vllm:")));
  });
});

describe("deploy/Dockerfile*", () => {
  // The context is everything but what .dockerignore re-includes ("*", then "!path" lines).
  const dockerignore = readFileSync(path.join(repoRoot, ".dockerignore"), "utf8").split("\n").filter((l) => l && !l.startsWith("#"));
  assert.equal(dockerignore[0], "*");
  const dockerignoreKept = new Set(dockerignore.filter((l) => l.startsWith("!")).map((l) => l.slice(1)));
  for (const file of ["Dockerfile", "Dockerfile.cuda"]) {
    test(`${file}: non-root, server port, model volume, health check on a route`, () => {
      const text = readFileSync(path.join(deployDir, file), "utf8");
      const user = [...text.matchAll(/^USER (\S+)$/gm)].at(-1)?.[1];
      assert.ok(user && user !== "root" && user !== "0", `USER ${user}`);
      assert.match(text, new RegExp(`^EXPOSE ${DEFAULT_PORT}\\b`, "m"));
      assert.match(text, new RegExp(`OLLAMA_HOST=0\\.0\\.0\\.0:${DEFAULT_PORT}`));
      const models = /VLLAMA_MODELS=(\S+)/.exec(text)?.[1];
      assert.match(text, new RegExp(`^VOLUME ${models}$`, "m"));
      const health = /^HEALTHCHECK [\s\S]*?http:\/\/127\.0\.0\.1:(\d+)(\/\S*?)'/m.exec(text);
      assert.equal(Number(health?.[1]), DEFAULT_PORT);
      assert.ok(getPaths.has(health![2]), health![2]);
    });

    test(`${file}: npm prune drops dev packages and keeps .npmrc's omissions (its --omit replaces them)`, () => {
      const text = readFileSync(path.join(deployDir, file), "utf8");
      const npmrcOmits = [...readFileSync(path.join(repoRoot, ".npmrc"), "utf8").matchAll(/^omit=(\S+)$/gm)].map((m) => m[1]);
      assert.ok(npmrcOmits.length > 0);
      const prune = /npm prune ([^&\n]*)/.exec(text)?.[1] ?? "";
      for (const omit of ["dev", ...npmrcOmits]) assert.match(prune, new RegExp(`--omit=${omit}\\b`), `npm prune ${prune}`);
    });

    test(`${file}: every path it copies from the build context passes .dockerignore`, () => {
      const text = readFileSync(path.join(deployDir, file), "utf8");
      const sources = [...text.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1].split(" "));
      assert.ok(sources.includes("src"), sources.join(" "));
      for (const source of sources) assert.ok(dockerignoreKept.has(source), `${source} is not re-included (!${source}) in .dockerignore`);
    });
  }
});

describe("scripts/container-check.sh", () => {
  const script = readFileSync(path.join(repoRoot, "scripts", "container-check.sh"), "utf8");

  test("its stand-in base is the Dockerfile's base image", () => {
    const base = /^base=(\S+)$/m.exec(script)?.[1];
    const froms = [...readFileSync(path.join(deployDir, "Dockerfile"), "utf8").matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    assert.deepEqual(new Set(froms.map((f) => `docker.io/library/${f}`)), new Set([base]));
  });

  test("it publishes the server's port, asks the built-in model an empty store serves, and waits out the drain", () => {
    assert.equal(Number(/ -p "127\.0\.0\.1:\$port:(\d+)"/.exec(script)?.[1]), DEFAULT_PORT);
    assert.equal(`${/model: "([^"]+)"/.exec(script)?.[1]}:latest`, BUILTIN_MODEL);
    const stopSeconds = Number(/podman stop -t (\d+)/.exec(script)?.[1]);
    assert.ok(stopSeconds >= defaultSetting("shutdownTimeout") / 1000 + 5, `podman stop -t ${stopSeconds}`);
  });
});

describe("the YAML subset reader", () => {
  test("reads what the manifests use and refuses what it does not", () => {
    assert.deepEqual(parseYamlDocuments('a: 1\nb:\n  - x\n  - k: "v" # c\n    n: null\n---\n- true\n'), [{ a: 1, b: ["x", { k: "v", n: null }] }, [true]]);
    assert.throws(() => parseYamlDocuments("a: [1, 2]\n"), /outside the YAML subset/);
    assert.throws(() => parseYamlDocuments("a: 1\na: 2\n"), /twice/);
  });
});
