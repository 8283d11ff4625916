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
  if (!responseCode) return message ?? String(error);
  const said = (response ?? message ?? '').trim();
  return said.startsWith(String(responseCode)) ? said : `${responseCode} ${said}`.trim();
}

// Enhanced codes that say the address itself is wrong (RFC 3463): unknown mailbox or domain, bad syntax, moved.
const UNKNOWN_MAILBOX_CODES = /\b5\.1\.(?:1|2|3|6|10)\b/;
const UNKNOWN_MAILBOX_WORDS =
  /user unknown|unknown user|no such (?:user|mailbox|recipient)|mailbox (?:does not exist|not found)|recipient address rejected/i;

/** A permanent answer about the address itself: the address goes on the suppression list. */
export function isUnknownMailbox(error: unknown): boolean {
  if (!isPermanentFailure(error)) return false;
  const text = describeFailure(error);
  return UNKNOWN_MAILBOX_CODES.test(text) || UNKNOWN_MAILBOX_WORDS.test(text);
}
