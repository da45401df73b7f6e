// A local http server of images for the remote-image tests: good images, and bad answers (404,
// a redirect to another scheme, an endless body, silence) held until the test releases them, so
// a test knows the server under test is still waiting on one while it sends another request.
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";

export class ImageServer {
  readonly url: string;
  /** Paths requested so far, in order. */
  readonly requested: string[] = [];
  private release = () => {};
  private held = Promise.resolve();
  private arrivals: Array<() => void> = [];

  private constructor(
    private readonly server: http.Server,
    private readonly images: Record<string, Buffer>,
  ) {
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  /** Serves `images` by path ("/a.png"); the bad routes are /missing, /to-ftp, /to-image (-> the first image), /endless, /silent. */
  static async start(images: Record<string, Buffer>): Promise<ImageServer> {
    const server = http.createServer();
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const imageServer = new ImageServer(server, images);
    server.on("request", (req, res) => void imageServer.answer(req.url ?? "/", res));
    return imageServer;
  }

  /** From now on, bad answers wait until `releaseHeld()`. */
  holdBadAnswers(): void {
    this.held = new Promise((resolve) => (this.release = resolve));
  }

  releaseHeld(): void {
    this.release();
  }

  /** Resolves when a request for `path` has arrived (or already had). */
  async arrived(path: string): Promise<void> {
    while (!this.requested.includes(path)) await new Promise<void>((resolve) => this.arrivals.push(resolve));
  }

  async close(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private async answer(path: string, res: http.ServerResponse): Promise<void> {
    this.requested.push(path);
    for (const notify of this.arrivals.splice(0)) notify();
    const image = this.images[path];
    if (image) {
      res.writeHead(200, { "content-type": "image/png", "content-length": image.length }).end(image);
      return;
    }
    if (path === "/silent") return; // never answers: the fetch's time limit ends it
    if (path === "/endless") {
      // No Content-Length: the size limit must be enforced while the body arrives.
      res.writeHead(200, { "content-type": "image/png" });
      res.write(Buffer.alloc(16 * 1024));
      await this.held;
      while (!res.destroyed) {
        if (!res.write(Buffer.alloc(64 * 1024))) await drainedOrClosed(res);
      }
      return;
    }
    await this.held;
    if (path === "/to-ftp") res.writeHead(302, { location: "ftp://127.0.0.1/a.png" }).end();
    else if (path === "/to-image") res.writeHead(302, { location: Object.keys(this.images)[0] }).end();
    else res.writeHead(404).end("not found");
  }
}

function drainedOrClosed(res: http.ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done).off("close", done);
      resolve();
    };
    res.on("drain", done).on("close", done);
  });
}
