// Images named by URL: OpenAI's `image_url` parts, the Responses API's `input_image` and
// Anthropic's `url` image sources may point at an http(s) address instead of carrying the bytes.
// The API translations keep such a URL in the native request's `images` (base64 never holds a
// ':', so the two cannot be confused), and the handler fetches each before the request reaches
// the engine, within the operator's limits (src/config.ts: remoteImages, remoteImageLimit,
// remoteImageTimeout). The fetch runs on the event loop, so other requests are served meanwhile;
// every failure is a 400 naming the URL (413 for an image over the size limit). Redirects are
// followed here, at most MAX_REDIRECTS, each to http or https only.
import { BadRequestError, CancelledError, PayloadTooLargeError, VllamaError } from "../api/errors.js";
import type { ChatMessage, ChatRequest } from "../api/ollama.js";
import type { ServerConfig } from "../config.js";
import { bodyLimitBytes, isLimited } from "./connection-limits.js";

export type RemoteImageSettings = Pick<ServerConfig, "remoteImages" | "remoteImageLimit" | "remoteImageTimeout">;

/** Fills a translated request's image URLs with their fetched bytes (base64); `signal` ends with the client. */
export type RemoteImageFetcher = (request: ChatRequest, signal: AbortSignal) => Promise<ChatRequest>;

const MAX_REDIRECTS = 5;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

export function isRemoteImage(image: string): boolean {
  return /^https?:\/\//i.test(image);
}

export function remoteImageFetcher(settings: RemoteImageSettings): RemoteImageFetcher {
  const maxBytes = bodyLimitBytes(settings.remoteImageLimit);
  const fetchOne = (url: string, signal: AbortSignal) => fetchImage(url, { maxBytes, timeoutMs: settings.remoteImageTimeout }, signal);
  return async (request, signal) => {
    if (!request.messages.some(hasRemoteImage)) return request;
    if (!settings.remoteImages) {
      throw new BadRequestError("image URLs are not fetched by this server (remote images are off): send the image inline, as a base64 data URL");
    }
    const messages = await Promise.all(request.messages.map(async (message): Promise<ChatMessage> => {
      if (!hasRemoteImage(message)) return message;
      const images = await Promise.all(message.images!.map((image) => (isRemoteImage(image) ? fetchOne(image, signal) : image)));
      return { ...message, images };
    }));
    return { ...request, messages };
  };
}

function hasRemoteImage(message: ChatMessage): boolean {
  return message.images?.some(isRemoteImage) ?? false;
}

interface FetchLimits {
  maxBytes: number;
  timeoutMs: number;
}

/** The image at `url` as base64; every failure is a typed error naming the URL. */
async function fetchImage(url: string, limits: FetchLimits, clientSignal: AbortSignal): Promise<string> {
  const timeout = isLimited(limits.timeoutMs) ? AbortSignal.timeout(limits.timeoutMs) : undefined;
  const signal = timeout ? AbortSignal.any([clientSignal, timeout]) : clientSignal;
  try {
    const response = await fetchFollowingRedirects(url, signal);
    if (!response.ok) {
      await response.body?.cancel();
      throw new BadRequestError(`image URL ${url} answered ${response.status} ${response.statusText}`.trimEnd());
    }
    return Buffer.from(await readLimited(response, url, limits.maxBytes)).toString("base64");
  } catch (error) {
    if (error instanceof VllamaError) throw error;
    if (clientSignal.aborted) throw clientSignal.reason instanceof VllamaError ? clientSignal.reason : new CancelledError();
    if (timeout?.aborted) throw new BadRequestError(`image URL ${url} took longer than ${limits.timeoutMs / 1000}s to fetch`);
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new BadRequestError(`image URL ${url} cannot be fetched: ${cause?.code ?? cause?.message ?? (error as Error).message}`);
  }
}

async function fetchFollowingRedirects(url: string, signal: AbortSignal): Promise<Response> {
  let current = httpUrl(url, url);
  for (let hops = 0; ; hops++) {
    const response = await fetch(current, { redirect: "manual", signal });
    const location = response.headers.get("location");
    if (!REDIRECT_STATUSES.has(response.status) || location === null) return response;
    await response.body?.cancel();
    if (hops === MAX_REDIRECTS) throw new BadRequestError(`image URL ${url} redirects more than ${MAX_REDIRECTS} times`);
    current = httpUrl(new URL(location, current).href, url);
  }
}

/** `target` parsed, when it is http or https; `requested` is the URL the client gave, for the message. */
function httpUrl(target: string, requested: string): URL {
  const parsed = URL.canParse(target) ? new URL(target) : undefined;
  if (parsed?.protocol !== "http:" && parsed?.protocol !== "https:") {
    const what = target === requested ? "is not" : `redirects to ${target}, not`;
    throw new BadRequestError(`image URL ${requested} ${what} an http or https URL`);
  }
  return parsed;
}

/** The body, refused (413) as soon as it is known to be over `maxBytes`: by its Content-Length, else while it arrives. */
async function readLimited(response: Response, url: string, maxBytes: number): Promise<Uint8Array> {
  const tooLarge = () => new PayloadTooLargeError(`image URL ${url} is larger than this server's limit of ${maxBytes} bytes for a fetched image`);
  if (Number(response.headers.get("content-length") ?? 0) > maxBytes) {
    await response.body?.cancel();
    throw tooLarge();
  }
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const part of response.body ?? []) {
    size += part.byteLength;
    if (size > maxBytes) throw tooLarge();
    parts.push(part);
  }
  return Buffer.concat(parts);
}
