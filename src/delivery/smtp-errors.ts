/** A 5xx answer from the relay will not change on retry; anything else (4xx, dropped, timeout) may. */
export function isPermanentFailure(error: unknown): boolean {
  const code = (error as { responseCode?: number }).responseCode;
  return typeof code === 'number' && code >= 500 && code < 600;
}

export function describeFailure(error: unknown): string {
  const { responseCode, response, message } = error as {
    responseCode?: number;
    response?: string;
    message?: string;
  };
  return responseCode
    ? `${responseCode} ${response ?? message ?? ''}`.trim()
    : (message ?? String(error));
}
