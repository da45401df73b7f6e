// The OpenSSH private key file ("openssh-key-v1", PROTOCOL.key in OpenSSH) for ed25519 keys
// without a passphrase: what Ollama (Go's x/crypto/ssh) and `ssh-keygen -t ed25519 -N ''` write.
// Node's crypto signs with ed25519 but reads no OpenSSH files, hence this small codec.

import { createPrivateKey, randomBytes, type KeyObject } from "node:crypto";
import { InternalError } from "../api/errors.js";

const KEY_TYPE = "ssh-ed25519";
const MAGIC = Buffer.from("openssh-key-v1\0", "latin1");
const PEM_BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----";
const PEM_END = "-----END OPENSSH PRIVATE KEY-----";
/** Unencrypted, the private section is padded to the "none" cipher's 8-byte block. */
const BLOCK_SIZE = 8;
/** ssh-keygen's line length for the base64 body. */
const LINE_LENGTH = 70;

function uint32(value: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(value);
  return bytes;
}

/** SSH's `string`: a uint32 length, then the bytes. */
function sshString(value: Buffer | string): Buffer {
  const bytes = Buffer.from(value);
  return Buffer.concat([uint32(bytes.length), bytes]);
}

/** Reads SSH wire fields; a field running past the end is a damaged file. */
class SshReader {
  private offset = 0;

  constructor(
    private readonly bytes: Buffer,
    private readonly fail: (reason: string) => never,
  ) {}

  uint32(): number {
    if (this.offset + 4 > this.bytes.length) this.fail("the file is truncated");
    const value = this.bytes.readUInt32BE(this.offset);
    this.offset += 4;
    return value;
  }

  bytesField(): Buffer {
    const length = this.uint32();
    if (this.offset + length > this.bytes.length) this.fail("the file is truncated");
    const value = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  text(): string {
    return this.bytesField().toString("latin1");
  }
}

function rawPublicKey(key: KeyObject): Buffer {
  return Buffer.from(key.export({ format: "jwk" }).x!, "base64url");
}

/** The public key as SSH encodes it: `string "ssh-ed25519"`, `string <32 bytes>`. */
function publicKeyBlob(publicKey: Buffer): Buffer {
  return Buffer.concat([sshString(KEY_TYPE), sshString(publicKey)]);
}

/** The base64 middle of an authorized_keys line ("AAAAC3NzaC1lZDI1NTE5..."): how registries name the key. */
export function publicKeyBase64(key: KeyObject): string {
  return publicKeyBlob(rawPublicKey(key)).toString("base64");
}

/** `ssh-ed25519 AAAA...`: the line a user adds to a registry account (and id_ed25519.pub holds). */
export function authorizedKey(key: KeyObject): string {
  return `${KEY_TYPE} ${publicKeyBase64(key)}`;
}

function pemBody(text: string): Buffer | undefined {
  const begin = text.indexOf(PEM_BEGIN);
  const end = text.indexOf(PEM_END, begin);
  if (begin < 0 || end < 0) return undefined;
  return Buffer.from(text.slice(begin + PEM_BEGIN.length, end).replace(/\s+/g, ""), "base64");
}

/** Parses an unencrypted ed25519 openssh-key-v1 file; `source` (its path) names it in errors. */
export function parseOpenSshPrivateKey(text: string, source: string): KeyObject {
  const fail = (reason: string): never => {
    throw new InternalError(`cannot use private key ${source}: ${reason}`);
  };
  const bytes = pemBody(text) ?? fail(`not an OpenSSH private key (no "${PEM_BEGIN}" block)`);
  if (!bytes.subarray(0, MAGIC.length).equals(MAGIC)) fail("not an openssh-key-v1 key");
  const file = new SshReader(bytes.subarray(MAGIC.length), fail);
  const cipher = file.text();
  const kdf = file.text();
  if (cipher !== "none" || kdf !== "none") {
    const fix = `remove it with \`ssh-keygen -p -N '' -f ${source}\``;
    fail(`it is encrypted (${cipher}); registry sign-in needs a key without a passphrase, as Ollama's does: ${fix}`);
  }
  file.bytesField(); // kdf options: empty without a kdf
  if (file.uint32() !== 1) fail("it holds more than one key");
  const publicBlob = file.bytesField();

  const secret = new SshReader(file.bytesField(), fail);
  if (secret.uint32() !== secret.uint32()) fail("it is damaged (its check numbers differ)");
  const type = secret.text();
  if (type !== KEY_TYPE) fail(`it is a ${type} key; only ${KEY_TYPE} keys are supported`);
  const publicKey = secret.bytesField();
  const seedAndPublic = secret.bytesField(); // ed25519's 32-byte seed, then the public key again
  const consistent =
    publicKey.length === 32 &&
    seedAndPublic.length === 64 &&
    seedAndPublic.subarray(32).equals(publicKey) &&
    publicBlob.equals(publicKeyBlob(publicKey));
  if (!consistent) fail("it is damaged (its public key copies disagree)");

  const jwk = { kty: "OKP", crv: "Ed25519", d: seedAndPublic.subarray(0, 32).toString("base64url"), x: publicKey.toString("base64url") };
  const key = createPrivateKey({ key: jwk, format: "jwk" });
  // Node derives the public key from the seed and ignores `x`: a mismatch means a damaged seed.
  if (!rawPublicKey(key).equals(publicKey)) fail("it is damaged (its seed does not give its public key)");
  return key;
}

/** The padding OpenSSH checks: bytes 1, 2, 3... up to the block size. */
function padding(length: number): Buffer {
  const count = (BLOCK_SIZE - (length % BLOCK_SIZE)) % BLOCK_SIZE;
  return Buffer.from(Array.from({ length: count }, (_, i) => i + 1));
}

/** Writes an ed25519 private key as an unencrypted openssh-key-v1 file, readable by Ollama and OpenSSH. */
export function formatOpenSshPrivateKey(key: KeyObject): string {
  const { d, x } = key.export({ format: "jwk" });
  const seed = Buffer.from(d!, "base64url");
  const publicKey = Buffer.from(x!, "base64url");
  const check = randomBytes(4); // written twice: after decryption, equal copies prove the passphrase
  const secret = Buffer.concat([
    check,
    check,
    sshString(KEY_TYPE),
    sshString(publicKey),
    sshString(Buffer.concat([seed, publicKey])),
    sshString(""), // comment
  ]);
  const body = Buffer.concat([
    MAGIC,
    sshString("none"), // cipher
    sshString("none"), // kdf
    sshString(""), // kdf options
    uint32(1), // number of keys
    sshString(publicKeyBlob(publicKey)),
    sshString(Buffer.concat([secret, padding(secret.length)])),
  ]);
  const lines = body.toString("base64").match(new RegExp(`.{1,${LINE_LENGTH}}`, "g"))!;
  return `${PEM_BEGIN}\n${lines.join("\n")}\n${PEM_END}\n`;
}
