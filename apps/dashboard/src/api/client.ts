// The admin API from the browser. Every failure becomes an ApiFailure whose message an operator
// can act on: the server's own message and code for an error envelope, "cannot reach" for the
// network. A 401 also tells the app to ask for the token again.

export class ApiFailure extends Error {
  override readonly name = "ApiFailure";
  readonly status: number;
  readonly code: string | null;

  constructor(status: number, code: string | null, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The message of an OpenAI error envelope, or the start of whatever else the body was. */
export const failureOf = (status: number, body: string): ApiFailure => {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: unknown; code?: unknown } };
    if (typeof parsed.error?.message === "string") {
      const code = typeof parsed.error.code === "string" ? parsed.error.code : null;
      return new ApiFailure(status, code, parsed.error.message);
    }
  } catch {
    // Not JSON: a proxy's HTML page, say.
  }
  const text = body.trim().slice(0, 200);
  return new ApiFailure(status, null, text === "" ? `HTTP ${status}` : text);
};

/** "message (code, HTTP 409)": what the dashboard shows for a failed call. */
export const describeFailure = (error: unknown): string => {
  if (error instanceof ApiFailure) {
    const code = error.code === null ? "" : `${error.code}, `;
    return error.status === 0 ? error.message : `${error.message} (${code}HTTP ${error.status})`;
  }
  return error instanceof Error ? error.message : String(error);
};

export const authHeaders = (token: string): Record<string, string> =>
  token === "" ? {} : { authorization: `Bearer ${token}` };

export interface AdminClient {
  get<T>(path: string, signal?: AbortSignal): Promise<T>;
  post<T>(path: string, body: unknown): Promise<T>;
}

export const createClient = (
  token: string,
  onUnauthorized: (failure: ApiFailure) => void,
  fetchImpl: typeof fetch = (input, init) => fetch(input, init),
): AdminClient => {
  const call = async <T>(path: string, init: RequestInit): Promise<T> => {
    let response: Response;
    try {
      response = await fetchImpl(path, {
        ...init,
        headers: { accept: "application/json", ...authHeaders(token), ...init.headers },
      });
    } catch (error) {
      if (init.signal?.aborted) throw error;
      throw new ApiFailure(0, null, `cannot reach cortex: ${describeFailure(error)}`);
    }
    const text = await response.text();
    if (!response.ok) {
      const failure = failureOf(response.status, text);
      if (response.status === 401) onUnauthorized(failure);
      throw failure;
    }
    return JSON.parse(text) as T;
  };
  return {
    get: (path, signal) => call(path, signal === undefined ? {} : { signal }),
    post: (path, body) =>
      call(path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      }),
  };
};
