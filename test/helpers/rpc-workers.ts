// ggml RPC workers for tests, each a separate process on loopback: llama.cpp's rpc-server as
// `vllama worker` starts it, a listener that accepts and never answers, and a minimal client of
// the RPC protocol (v7: | cmd u8 | size u64 | payload |, answered by | size u64 | payload |),
// written from ggml-rpc.cpp's message layouts, to see what a worker reports.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createServer, Socket, type AddressInfo, type Server } from "node:net";
import { rpcServerPath } from "../../src/cli/worker.js";

const RPC_CMD_GET_DEVICE_MEMORY = 11;
const RPC_CMD_HELLO = 14;
const RPC_CONN_CAPS_SIZE = 24;

/** A port free on 127.0.0.1 a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Sends commands over one connection and reads each answer whole. */
class RpcConnection {
  private buffered = Buffer.alloc(0);
  private waiting?: () => void;

  private constructor(private readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.waiting?.();
    });
  }

  static async open(endpoint: string): Promise<RpcConnection> {
    const [host, port] = endpoint.split(":");
    const socket = new Socket();
    socket.connect(Number(port), host);
    await once(socket, "connect");
    return new RpcConnection(socket);
  }

  async command(cmd: number, payload: Buffer): Promise<Buffer> {
    const header = Buffer.alloc(9);
    header.writeUInt8(cmd, 0);
    header.writeBigUInt64LE(BigInt(payload.length), 1);
    this.socket.write(Buffer.concat([header, payload]));
    const size = Number((await this.read(8)).readBigUInt64LE(0));
    return this.read(size);
  }

  private async read(n: number): Promise<Buffer> {
    while (this.buffered.length < n) {
      await new Promise<void>((resolve, reject) => {
        this.waiting = resolve;
        this.socket.once("close", () => reject(new Error("the worker closed the connection")));
      });
    }
    const out = this.buffered.subarray(0, n);
    this.buffered = this.buffered.subarray(n);
    return out;
  }

  close(): void {
    this.socket.destroy();
  }
}

export interface WorkerReport {
  version: string;
  memoryFree: number;
  memoryTotal: number;
}

/** The worker's protocol version (HELLO) and its device 0's memory, as a client sees them. */
export async function askWorker(endpoint: string): Promise<WorkerReport> {
  const connection = await RpcConnection.open(endpoint);
  try {
    const hello = await connection.command(RPC_CMD_HELLO, Buffer.alloc(RPC_CONN_CAPS_SIZE));
    const device = Buffer.alloc(4);
    const memory = await connection.command(RPC_CMD_GET_DEVICE_MEMORY, device);
    return {
      version: `${hello[0]}.${hello[1]}.${hello[2]}`,
      memoryFree: Number(memory.readBigUInt64LE(0)),
      memoryTotal: Number(memory.readBigUInt64LE(8)),
    };
  } finally {
    connection.close();
  }
}

/** Retries `askWorker` until the worker listens (it takes a moment to load its backends). */
export async function waitForWorker(endpoint: string, timeoutMs = 30_000): Promise<WorkerReport> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await askWorker(endpoint);
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`no RPC worker answered on ${endpoint} within ${timeoutMs} ms`, { cause: error });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

export interface RpcWorker {
  endpoint: string;
  process: ChildProcess;
  /** Ends the worker (SIGKILL: a worker lost without warning) and waits for it. */
  kill(): Promise<void>;
}

/** llama.cpp's rpc-server as `vllama worker` runs it, on loopback (a free port by default), ready to serve. */
export async function startRpcWorker(port?: number, threads = 1): Promise<RpcWorker> {
  port ??= await freePort();
  const endpoint = `127.0.0.1:${port}`;
  const child = spawn(rpcServerPath, ["--host", "127.0.0.1", "--port", String(port), "--threads", String(threads)], { stdio: "ignore" });
  const exited = once(child, "exit");
  await waitForWorker(endpoint);
  return {
    endpoint,
    process: child,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

/** A TCP listener that accepts connections and never says anything: a hung worker. */
export async function startSilentListener(): Promise<{ endpoint: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `127.0.0.1:${port}`,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
