// The start every chat-shaped handler shares (OpenAI chat completions, Anthropic messages,
// Responses): the body parsed by its API's schema, the model noted for the access log, the
// request's abort signal (the client going away), and the native chat request with its image
// URLs fetched.
import type { Request, Response } from "express";
import type { z } from "zod";
import type { ChatRequest } from "../api/ollama.js";
import { parseRequest } from "../api/validate.js";
import { notes, withDefaults, type ServerSettings } from "./context.js";
import { remoteImageFetcher } from "./remote-images.js";
import { abortOnDisconnect } from "./streams.js";

export function chatRequestReader(config: ServerSettings) {
  const fetchImages = remoteImageFetcher(withDefaults(config));
  return async <S extends z.ZodType<{ model: string }>>(schema: S, toChatRequest: (body: z.output<S>) => ChatRequest, req: Request, res: Response) => {
    const body = parseRequest(schema, req.body);
    notes(res).model = body.model;
    const signal = abortOnDisconnect(res);
    const request = await fetchImages(toChatRequest(body), signal);
    return { body, signal, request };
  };
}
