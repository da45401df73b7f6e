// A ZeroMQ PUB socket speaking ZMTP 3 over TCP with the NULL mechanism, what vLLM's KV event
// publisher opens and llm-d's indexer subscribes to. Like libzmq's: it binds ("tcp://*:5557") or
// connects ("tcp://indexer:5557", retried until it answers), keeps each subscriber's topic
// prefixes (ZMTP 3.0 subscription messages and 3.1 SUBSCRIBE/CANCEL commands), sends a multipart
// message only to subscribers of a matching prefix, and drops messages for a subscriber whose
// unsent bytes pass the high-water mark instead of buffering without bound.
import net from "node:net";

const HIGH_WATER_BYTES = 16 * 1024 * 1024;
const RECONNECT_MS = 1000;
const FLAG_MORE = 0x01;
const FLAG_LONG = 0x02;
const FLAG_COMMAND = 0x04;

function greeting(): Buffer {
  const g = Buffer.alloc(64);
  g[0] = 0xff;
  g[9] = 0x7f;
  g[10] = 3; // version 3.1
  g[11] = 1;
  g.write("NULL", 12, "ascii");
  return g;
}

function frame(body: Buffer, flags: number): Buffer {
  if (body.length < 256) return Buffer.concat([Buffer.from([flags, body.length]), body]);
  const h = Buffer.alloc(9);
  h[0] = flags | FLAG_LONG;
  h.writeBigUInt64BE(BigInt(body.length), 1);
  return Buffer.concat([h, body]);
}

function command(name: string, data: Buffer): Buffer {
  return frame(Buffer.concat([Buffer.from([name.length]), Buffer.from(name, "ascii"), data]), FLAG_COMMAND);
}

function readyCommand(): Buffer {
  const name = Buffer.from("Socket-Type", "ascii");
  const value = Buffer.from("PUB", "ascii");
  const size = Buffer.alloc(4);
  size.writeUInt32BE(value.length);
  return command("READY", Buffer.concat([Buffer.from([name.length]), name, size, value]));
}

/** Parses `tcp://host:port`; `*` (all interfaces) means bind, as in libzmq. */
export function parseTcpEndpoint(endpoint: string): { host: string; port: number; bind: boolean } {
  const m = /^tcp:\/\/(\*|\[[^\]]+\]|[^:/\[\]]+):(\d{1,5})$/.exec(endpoint);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new Error(`not a tcp://host:port endpoint: ${endpoint}`);
  const host = m[1].replace(/^\[|\]$/g, "");
  return { host: host === "*" ? "0.0.0.0" : host, port, bind: host === "*" };
}

/** One peer: handshake, then its subscriptions; we only ever send to it. */
class Peer {
  readonly prefixes: Buffer[] = [];
  private ready = false;
  private input = Buffer.alloc(0);
  private greeted = false;
  private readonly message: Buffer[] = [];

  constructor(readonly socket: net.Socket, onClose: () => void) {
    socket.setNoDelay(true);
    socket.on("data", (chunk) => this.receive(chunk));
    socket.on("error", () => socket.destroy());
    socket.on("close", onClose);
    socket.write(Buffer.concat([greeting(), readyCommand()]));
  }

  subscribedTo(topic: Buffer): boolean {
    return this.ready && this.prefixes.some((p) => topic.subarray(0, p.length).equals(p));
  }

  send(frames: Buffer[]): void {
    if (this.socket.writableLength > HIGH_WATER_BYTES) return;
    this.socket.write(Buffer.concat(frames.map((f, i) => frame(f, i < frames.length - 1 ? FLAG_MORE : 0))));
  }

  private receive(chunk: Buffer): void {
    this.input = Buffer.concat([this.input, chunk]);
    if (!this.greeted) {
      if (this.input.length < 64) return;
      if (this.input[0] !== 0xff || this.input[9] !== 0x7f || this.input[10] < 3) return this.fail();
      this.greeted = true;
      this.input = this.input.subarray(64);
    }
    for (;;) {
      if (this.input.length < 2) return;
      const flags = this.input[0];
      const long = (flags & FLAG_LONG) !== 0;
      const headSize = long ? 9 : 2;
      if (this.input.length < headSize) return;
      const size = long ? Number(this.input.readBigUInt64BE(1)) : this.input[1];
      if (this.input.length < headSize + size) return;
      const body = this.input.subarray(headSize, headSize + size);
      this.input = this.input.subarray(headSize + size);
      if (flags & FLAG_COMMAND) this.command(body);
      else this.messageFrame(body, (flags & FLAG_MORE) !== 0);
    }
  }

  private command(body: Buffer): void {
    const name = body.subarray(1, 1 + body[0]).toString("ascii");
    const data = body.subarray(1 + body[0]);
    if (name === "READY") this.ready = true;
    else if (name === "SUBSCRIBE") this.subscribe(data);
    else if (name === "CANCEL") this.cancel(data);
    else if (name === "ERROR") this.fail();
  }

  /** ZMTP 3.0 subscriptions are one-frame messages: 1 + prefix subscribes, 0 + prefix cancels. */
  private messageFrame(body: Buffer, more: boolean): void {
    this.message.push(body);
    if (more) return;
    const [first] = this.message.splice(0);
    if (first?.[0] === 1) this.subscribe(first.subarray(1));
    else if (first?.[0] === 0) this.cancel(first.subarray(1));
  }

  private subscribe(prefix: Buffer): void {
    this.prefixes.push(Buffer.from(prefix));
  }

  private cancel(prefix: Buffer): void {
    const i = this.prefixes.findIndex((p) => p.equals(prefix));
    if (i >= 0) this.prefixes.splice(i, 1);
  }

  private fail(): void {
    this.socket.destroy();
  }
}

export class ZmtpPublisher {
  private readonly peers = new Set<Peer>();
  private server?: net.Server;
  private reconnect?: NodeJS.Timeout;
  private closed = false;

  private constructor(private readonly endpoint: ReturnType<typeof parseTcpEndpoint>) {}

  /** Binds or connects (see parseTcpEndpoint); a bind resolves once listening. */
  static async open(endpoint: string): Promise<ZmtpPublisher> {
    const publisher = new ZmtpPublisher(parseTcpEndpoint(endpoint));
    await publisher.start();
    return publisher;
  }

  /** The bound port (useful with port 0), or the port connected to. */
  get port(): number {
    const address = this.server?.address();
    return typeof address === "object" && address ? address.port : this.endpoint.port;
  }

  send(frames: Buffer[]): void {
    for (const peer of this.peers) if (peer.subscribedTo(frames[0])) peer.send(frames);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnect);
    for (const peer of this.peers) peer.socket.end();
    if (this.server) await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }

  private async start(): Promise<void> {
    const { host, port, bind } = this.endpoint;
    if (!bind) return this.connect();
    this.server = net.createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      this.server!.once("error", (err) => reject(new Error(`cannot bind the KV events endpoint tcp://*:${port}: ${err.message}`)));
      this.server!.listen(port, host, () => resolve());
    });
  }

  private accept(socket: net.Socket, onClose = () => {}): void {
    const peer: Peer = new Peer(socket, () => {
      this.peers.delete(peer);
      onClose();
    });
    this.peers.add(peer);
  }

  private connect(): void {
    if (this.closed) return;
    const socket = net.connect(this.endpoint.port, this.endpoint.host);
    this.accept(socket, () => {
      if (this.closed) return;
      this.reconnect = setTimeout(() => this.connect(), RECONNECT_MS);
      this.reconnect.unref();
    });
  }
}
