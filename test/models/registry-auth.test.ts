// Registry sign-in as Ollama does it: OpenSSH ed25519 keys (read, written, created on first use),
// signed token requests answered by the test registry's verifying token endpoint, Bearer tokens,
// and the errors a user sees when a key is refused or a registry's challenge is broken.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { generateKeyPairSync, sign, verify } from "node:crypto";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, afterEach, before, beforeEach, describe, test } from "node:test";
import { pino } from "pino";
import { InternalError, UnauthorizedError } from "../../src/api/errors.js";
import { Engine } from "../../src/engine/engine.js";
import { loadOrCreateKey } from "../../src/models/registry-auth.js";
import { pull, push } from "../../src/models/registry.js";
import { authorizedKey, formatOpenSshPrivateKey, parseOpenSshPrivateKey } from "../../src/models/ssh-key.js";
import { ModelStore } from "../../src/models/store.js";
import { LAYER_MEDIA_TYPES } from "../../src/models/types.js";
import { startServer, type RunningServer } from "../../src/server/index.js";
import { publicKeyFromAuthorizedKey, TestRegistry } from "../helpers/registry.js";
import { storiesPath as GGUF_PATH } from "../helpers/models.js";
import { tempDirs } from "../helpers/store.js";

const hasSshKeygen = spawnSync("ssh-keygen", ["-?"]).error === undefined;

// A throwaway key made with `ssh-keygen -t ed25519 -N '' -C fixture@vllama-tests`, and its .pub
// as ssh-keygen derived it: parsing must arrive at the same public key.
const FIXTURE_KEY = `-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACBUA8hVdUKS9NSeGXJSP92SsSjjW3hcAoCgyE3TWXfaOwAAAJg3x1ihN8dY
oQAAAAtzc2gtZWQyNTUxOQAAACBUA8hVdUKS9NSeGXJSP92SsSjjW3hcAoCgyE3TWXfaOw
AAAEATNYsbt62jrGxjjj/8kWmuOgqZVjX5nFHk+5fJ/+DljlQDyFV1QpL01J4ZclI/3ZKx
KONbeFwCgKDITdNZd9o7AAAAFGZpeHR1cmVAdmxsYW1hLXRlc3RzAQ==
-----END OPENSSH PRIVATE KEY-----
`;
const FIXTURE_PUBLIC = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFQDyFV1QpL01J4ZclI/3ZKxKONbeFwCgKDITdNZd9o7 fixture@vllama-tests";
// The same kind of key with the passphrase "secret" (aes256-ctr, bcrypt).
const ENCRYPTED_FIXTURE_KEY = `-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABBLWAih55
nnF4wQX8MBq1mvAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAICA8Lbunb64SYaHG
iABkwFmBwEzNi+p2MNjenwvmX0WEAAAAoDpCXAs8Bg1rpsQCNbb7c/g4KmYRaxZlZ5lGXu
owQ9BI3pShYLWu1rCVvyqCWVnukLjK5bv0gOMakvtdMkEnejooufL9fw9ArAjzXNNeteNy
NUTWK2rwm3vAlgn5IdKIYxuH81r/Y8RrAsQc5QQkox4EMOoKFET1IvdGdK4pYccTjTLofl
NaWPr7qX5OusxhtKRN6vOtNYLHZkAk8JKUK+8=
-----END OPENSSH PRIVATE KEY-----
`;

const { tempDir } = tempDirs("auth");

const withoutComment = (line: string) => line.trim().split(/\s+/).slice(0, 2).join(" ");

/** A key in OpenSSH format at a fresh path, and its authorized_keys line. */
async function writeKey(): Promise<{ keyPath: string; publicLine: string }> {
  const { privateKey } = generateKeyPairSync("ed25519");
  const keyPath = join(await tempDir(), "id_ed25519");
  await writeFile(keyPath, formatOpenSshPrivateKey(privateKey), { mode: 0o600 });
  return { keyPath, publicLine: authorizedKey(privateKey) };
}

const unauthorized = (pattern: RegExp) => (e: unknown) => e instanceof UnauthorizedError && pattern.test(e.message);

describe("OpenSSH ed25519 keys", () => {
  test("reads a key ssh-keygen wrote, arriving at the public key ssh-keygen derived", () => {
    const key = parseOpenSshPrivateKey(FIXTURE_KEY, "fixture");
    assert.equal(authorizedKey(key), withoutComment(FIXTURE_PUBLIC));
    const data = Buffer.from("GET,https://registry.example/v2/token,digest");
    assert.ok(verify(null, data, publicKeyFromAuthorizedKey(FIXTURE_PUBLIC).publicKey, sign(null, data, key)));
  });

  test("writes keys that read back to the same key, in ssh-keygen's layout", () => {
    const { privateKey } = generateKeyPairSync("ed25519");
    const text = formatOpenSshPrivateKey(privateKey);
    assert.match(text, /^-----BEGIN OPENSSH PRIVATE KEY-----\n([A-Za-z0-9+/=]{1,70}\n)+-----END OPENSSH PRIVATE KEY-----\n$/);
    const read = parseOpenSshPrivateKey(text, "written");
    assert.deepEqual(read.export({ format: "jwk" }), privateKey.export({ format: "jwk" }));
    assert.equal(authorizedKey(read), authorizedKey(privateKey));
  });

  test("round-trips with OpenSSH itself: ssh-keygen reads ours, we read a fresh one of its", { skip: !hasSshKeygen && "no ssh-keygen" }, async () => {
    const dir = await tempDir();
    const ours = join(dir, "ours");
    const { privateKey } = generateKeyPairSync("ed25519");
    await writeFile(ours, formatOpenSshPrivateKey(privateKey), { mode: 0o600 });
    const derived = execFileSync("ssh-keygen", ["-y", "-f", ours], { encoding: "utf8" });
    assert.equal(withoutComment(derived), authorizedKey(privateKey));

    const theirs = join(dir, "theirs");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "someone@host", "-f", theirs]);
    const key = parseOpenSshPrivateKey(await readFile(theirs, "utf8"), theirs);
    assert.equal(authorizedKey(key), withoutComment(await readFile(`${theirs}.pub`, "utf8")));
  });

  test("refuses an encrypted key, saying how to remove the passphrase", () => {
    assert.throws(
      () => parseOpenSshPrivateKey(ENCRYPTED_FIXTURE_KEY, "/home/me/.ollama/id_ed25519"),
      (e: unknown) =>
        e instanceof InternalError &&
        e.message === "cannot use private key /home/me/.ollama/id_ed25519: it is encrypted (aes256-ctr); registry sign-in needs a key " +
          "without a passphrase, as Ollama's does: remove it with `ssh-keygen -p -N '' -f /home/me/.ollama/id_ed25519`",
    );
  });

  test("refuses other files and damaged keys with an error naming the file", () => {
    const pkcs8 = generateKeyPairSync("ed25519").privateKey.export({ format: "pem", type: "pkcs8" }).toString();
    const lines = FIXTURE_KEY.split("\n");
    const truncated = [...lines.slice(0, 3), ...lines.slice(-2)].join("\n");
    const body = Buffer.from(lines.slice(1, -2).join(""), "base64");
    body[body.length - 40]! ^= 0xff; // inside the seed
    const damagedSeed = `${lines[0]}\n${body.toString("base64")}\n${lines.at(-2)}\n`;
    const cases: Array<[string, RegExp]> = [
      ["not a key at all", /^cannot use private key k: not an OpenSSH private key/],
      [pkcs8, /^cannot use private key k: not an OpenSSH private key/],
      [truncated, /^cannot use private key k: (the file is truncated|it is damaged)/],
      [damagedSeed, /^cannot use private key k: it is damaged/],
    ];
    for (const [text, message] of cases) {
      assert.throws(() => parseOpenSshPrivateKey(text, "k"), (e: unknown) => e instanceof InternalError && message.test(e.message), text);
    }
  });

  test("creates a missing key as Ollama does: id_ed25519 (0600) and id_ed25519.pub, read back after", async () => {
    const keyPath = join(await tempDir(), "nested", ".ollama", "id_ed25519");
    const [created, concurrent] = await Promise.all([loadOrCreateKey(keyPath), loadOrCreateKey(keyPath)]);
    assert.equal(authorizedKey(concurrent), authorizedKey(created), "concurrent first uses agree on one key");
    assert.equal((await stat(keyPath)).mode & 0o777, 0o600);
    assert.equal(await readFile(`${keyPath}.pub`, "utf8"), `${authorizedKey(created)}\n`);
    assert.equal(authorizedKey(parseOpenSshPrivateKey(await readFile(keyPath, "utf8"), keyPath)), authorizedKey(created));
    assert.equal(authorizedKey(await loadOrCreateKey(keyPath)), authorizedKey(created));
  });
});

describe("registry sign-in", () => {
  let registry: TestRegistry;
  let keyPath: string;
  let publicLine: string;
  let name: string;

  beforeEach(async () => {
    registry = await TestRegistry.start();
    ({ keyPath, publicLine } = await writeKey());
    registry.publish("library/tiny", "latest", [{ mediaType: LAYER_MEDIA_TYPES.model, data: "weights" }]);
    registry.requireAuth(publicLine);
    name = `${registry.host}/library/tiny:latest`;
  });
  afterEach(() => registry.close());

  const tokenRequests = () => registry.requests.filter((r) => r.path.startsWith("/token?"));
  const newStore = async () => new ModelStore(join(await tempDir(), "models"));

  test("pulls after one signed token request, then sends the Bearer token with every request", async () => {
    const store = await newStore();
    await pull(store, name, { keyPath }, () => {});
    assert.equal((await store.list())[0]!.name, name);
    assert.equal(tokenRequests().length, 1);
    const [keyBlob, signature] = tokenRequests()[0]!.authorization!.split(":");
    assert.equal(keyBlob, publicLine.split(" ")[1]);
    assert.equal(Buffer.from(signature!, "base64").length, 64, "the raw ed25519 signature, as Ollama's ssh Signature.Blob");
    const v2 = registry.requests.filter((r) => r.path.startsWith("/v2/"));
    assert.equal(v2[0]!.authorization, undefined);
    assert.ok(v2.slice(1).every((r) => r.authorization?.startsWith("Bearer ")));
  });

  test("builds the token URL as Ollama does, and the registry refuses a replayed or altered request", async () => {
    await pull(await newStore(), name, { keyPath }, () => {});
    const { path, authorization } = tokenRequests()[0]!;
    assert.match(path, /^\/token\?nonce=[\w-]{22}&scope=repository%3Alibrary%2Ftiny%3Apull&service=127\.0\.0\.1%3A\d+&ts=\d+$/);
    const replay = await fetch(`${registry.url}${path}`, { headers: { Authorization: authorization! } });
    assert.equal(replay.status, 401);
    assert.match(await replay.text(), /nonce missing or reused/);
    const altered = await fetch(`${registry.url}${path.replace("pull", "pull,push")}`, { headers: { Authorization: authorization! } });
    assert.match(await altered.text(), /invalid signature/);
  });

  test("pushes, signing in again when the push scope is challenged, and pulls the model back", async () => {
    const store = await newStore();
    const pushed = `${registry.host}/me/tiny:v1`;
    await store.create({ model: pushed, from: GGUF_PATH, system: "pushed" });
    await push(store, pushed, { keyPath }, () => {});
    assert.deepEqual(registry.manifests.get("me/tiny:v1"), (await store.readManifest(pushed)).bytes);
    assert.deepEqual(tokenRequests().map((r) => new URL(r.path, registry.url).searchParams.get("scope")), [
      "repository:me/tiny:pull", // the first HEAD
      "repository:me/tiny:pull,push", // the first upload
    ]);

    const other = await newStore();
    await pull(other, pushed, { keyPath }, () => {});
    assert.equal((await other.readManifest(pushed)).digest, (await store.readManifest(pushed)).digest);
  });

  test("creates the key on first sign-in; refused until the registry knows it, then accepted", async () => {
    const freshKey = join(await tempDir(), ".ollama", "id_ed25519");
    const store = await newStore();
    await assert.rejects(pull(store, name, { keyPath: freshKey }, () => {}), UnauthorizedError);
    const created = (await readFile(`${freshKey}.pub`, "utf8")).trim();
    assert.equal(authorizedKey(parseOpenSshPrivateKey(await readFile(freshKey, "utf8"), freshKey)), created);

    registry.requireAuth(created);
    await pull(store, name, { keyPath: freshKey }, () => {});
    assert.equal((await store.list()).length, 1);
  });

  test("a key the registry does not know: one line naming the key to add", async () => {
    const stranger = await writeKey();
    await assert.rejects(
      pull(await newStore(), name, { keyPath: stranger.keyPath }, () => {}),
      (e: unknown) =>
        e instanceof UnauthorizedError &&
        e.message ===
          `pull model manifest: unauthorized: unknown key; if the model is private, add your public key to your account on ${registry.host}: ${stranger.publicLine}`,
    );
  });

  test("a push the token does not cover: Ollama's namespace advice, with the key", async () => {
    registry.requireAuth(publicLine, { grantPush: false });
    const store = await newStore();
    const pushed = `${registry.host}/someone-else/tiny:v1`;
    await store.create({ model: pushed, from: GGUF_PATH });
    await assert.rejects(
      push(store, pushed, { keyPath }, () => {}),
      unauthorized(
        /^push [0-9a-f]{12}: unauthorized: authentication required; you are not authorized to push to this namespace, create the model under a namespace you own, with your public key added to your account on 127\.0\.0\.1:\d+: ssh-ed25519 AAAA\S+$/,
      ),
    );
    assert.equal(registry.manifests.has("someone-else/tiny:v1"), false);
  });

  test("an encrypted key: a clear error, and no request signed", async () => {
    const encrypted = join(await tempDir(), "id_ed25519");
    await writeFile(encrypted, ENCRYPTED_FIXTURE_KEY, { mode: 0o600 });
    await assert.rejects(
      pull(await newStore(), name, { keyPath: encrypted }, () => {}),
      (e: unknown) => e instanceof InternalError && e.message.startsWith(`cannot use private key ${encrypted}: it is encrypted (aes256-ctr)`),
    );
    assert.equal(tokenRequests().length, 0);
  });

  test("broken challenges: a clear error each, never a crash", async () => {
    const invalid = (e: unknown) =>
      e instanceof InternalError && /^pull model manifest: 127\.0\.0\.1:\d+ sent an invalid authentication challenge/.test(e.message);
    const cases: Array<[string | null, (e: unknown) => boolean]> = [
      [null, unauthorized(/^pull model manifest: unauthorized: 127\.0\.0\.1:\d+ sent no authentication challenge$/)],
      ['Basic realm="registry"', unauthorized(/asks for Basic credentials; like Ollama, vllama signs in only with Bearer tokens$/)],
      ['Bearer service="x",scope="y"', invalid],
      ["Bearer", invalid],
      ['Bearer realm="http://unterminated', invalid],
      ['Bearer realm="file:///etc/passwd"', invalid],
      ['Bearer realm=""', invalid],
    ];
    for (const [challenge, expected] of cases) {
      registry.requireAuth(publicLine, { challenge });
      await assert.rejects(pull(await newStore(), name, { keyPath }, () => {}), expected, String(challenge));
    }
    assert.equal(tokenRequests().length, 0);
  });

  test("reads challenge parameters in any order, quoted or not, with escapes", async () => {
    registry.requireAuth(publicLine, {
      challenge: `bearer scope="repository:library/tiny:pull", service=${registry.host},realm="${registry.url}/\\token"`,
    });
    await pull(await newStore(), name, { keyPath }, () => {});
    assert.equal(tokenRequests().length, 1);
  });
});

describe("/api/pull through the server, with the key in ~/.ollama", () => {
  let registry: TestRegistry;
  let engine: Engine;
  let server: RunningServer;
  let home: string;
  const originalHome = process.env.HOME;

  before(async () => {
    home = await tempDir();
    process.env.HOME = home;
    registry = await TestRegistry.start();
    registry.publish("library/tiny", "latest", [{ mediaType: LAYER_MEDIA_TYPES.model, data: "weights" }]);
    engine = new Engine({ modelsDir: join(home, "models") });
    server = await startServer({ engine, config: { host: "127.0.0.1", port: 0, origins: [], bodyLimit: "1mb" }, logger: pino({ level: "silent" }) });
  });
  after(async () => {
    process.env.HOME = originalHome;
    await server.close();
    await engine.close();
    await registry.close();
  });

  const apiPull = (model: string) =>
    fetch(`http://127.0.0.1:${server.port}/api/pull`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model, stream: false }),
    });

  test("answers 401 with the created key to add, then pulls once the registry knows it", async () => {
    registry.requireAuth(authorizedKey(generateKeyPairSync("ed25519").privateKey));
    const refused = await apiPull(`${registry.host}/library/tiny`);
    assert.equal(refused.status, 401);
    const keyPath = join(home, ".ollama", "id_ed25519");
    const created = (await readFile(`${keyPath}.pub`, "utf8")).trim();
    const { error } = (await refused.json()) as { error: string };
    assert.equal(error, `pull model manifest: unauthorized: unknown key; if the model is private, add your public key to your account on ${registry.host}: ${created}`);

    registry.requireAuth(created);
    const accepted = await apiPull(`${registry.host}/library/tiny`);
    assert.equal(accepted.status, 200);
    assert.deepEqual(await accepted.json(), { status: "success" });
  });
});
