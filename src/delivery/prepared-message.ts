import { randomBytes } from 'node:crypto';
import { domainToASCII } from 'node:url';
import { encodeWord, encodeWords, foldLines } from 'nodemailer/lib/mime-funcs';
import { encode as encodeQuotedPrintable, wrap as wrapQuotedPrintable } from 'nodemailer/lib/qp';
import { escapeHtml } from '../digests/mail-templates.ts';

/** What one mail has in common for every reader: a send's, or a stored confirmation body's. */
export interface MessageCommon {
  from: { name: string; address: string };
  replyTo?: string | null;
  subject: string;
  /** Compiled HTML and text with `%%{name}%%` placeholders still in them. */
  html: string;
  text: string;
  listId: string;
  /** A confirmation mail, say: no List-Unsubscribe, and not marked as bulk. */
  transactional?: boolean;
  listUnsubscribeMailto?: string;
  feedbackId?: string;
  extraHeaders?: Record<string, string>;
}

/** What differs per reader; values are spliced in, never re-encoded as a whole message. */
export interface MessageReader {
  to: string;
  messageId: string;
  date: Date;
  /** Values for the body placeholders; `unsubscribe_url` also goes into List-Unsubscribe. */
  values: Record<string, string>;
}

type Piece = string | { value: string; encoding: 'header' | 'text' | 'html' };

export interface PreparedMessage {
  readonly pieces: readonly (Buffer | Exclude<Piece, string>)[];
}

const PLACEHOLDER = /%%\{([a-zA-Z]\w*)\}%%/;
const LINE = 76;
const SOFT_BREAK = '=\r\n';

/**
 * Builds headers and MIME structure once. Bodies are quoted-printable with a soft line break
 * on both sides of every placeholder, so a reader's value is encoded on its own lines and the
 * rest of the message is never touched again.
 */
export function prepareMessage(common: MessageCommon): PreparedMessage {
  const boundary = `----=_broadsheet_${randomBytes(12).toString('hex')}`;
  const pieces: Piece[] = [];
  const push = (piece: Piece) => {
    const last = pieces.at(-1);
    if (typeof piece === 'string' && typeof last === 'string')
      pieces[pieces.length - 1] = last + piece;
    else pieces.push(piece);
  };

  push(header('From', mailbox(common.from)));
  if (common.replyTo) push(header('Reply-To', common.replyTo));
  push('To: ');
  push({ value: 'to', encoding: 'header' });
  push('\r\n' + header('Subject', encodeWords(common.subject, 'Q', 52)));
  push('Date: ');
  push({ value: 'date', encoding: 'header' });
  push('\r\nMessage-ID: ');
  push({ value: 'message_id', encoding: 'header' });
  push('\r\n' + header('MIME-Version', '1.0'));
  push(header('List-Id', common.listId));
  if (!common.transactional) {
    push('List-Unsubscribe: <');
    push({ value: 'unsubscribe_url', encoding: 'header' });
    push(
      common.listUnsubscribeMailto
        ? `>,\r\n <mailto:${common.listUnsubscribeMailto}>\r\n`
        : '>\r\n',
    );
    push(header('List-Unsubscribe-Post', 'List-Unsubscribe=One-Click'));
    push(header('Precedence', 'bulk'));
  }
  if (common.feedbackId) push(header('Feedback-ID', common.feedbackId));
  for (const [name, value] of Object.entries(common.extraHeaders ?? {})) push(header(name, value));
  push(header('Content-Type', `multipart/alternative; boundary="${boundary}"`) + '\r\n');

  for (const [type, body] of [
    ['text/plain', common.text],
    ['text/html', common.html],
  ] as const) {
    push(
      `--${boundary}\r\nContent-Type: ${type}; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n`,
    );
    const parts = body.replace(/\r?\n/g, '\r\n').split(PLACEHOLDER);
    parts.forEach((part, index) => {
      if (index % 2 === 1) {
        push({ value: part, encoding: type === 'text/html' ? 'html' : 'text' });
        return;
      }
      const encoded = wrapQuotedPrintable(encodeQuotedPrintable(part), LINE - 1);
      const beforeValue = index < parts.length - 1;
      const afterValue = index > 0;
      push((afterValue && encoded ? SOFT_BREAK : '') + encoded + (beforeValue ? SOFT_BREAK : ''));
    });
    push('\r\n');
  }
  push(`--${boundary}--\r\n`);
  // The fixed parts are bytes already, so a reader costs a copy, not a re-encoding of the whole mail.
  return {
    pieces: pieces.map((piece) => (typeof piece === 'string' ? Buffer.from(piece, 'utf8') : piece)),
  };
}

/** The finished bytes for one reader: a few string joins, no MIME building. */
export function messageFor(prepared: PreparedMessage, reader: MessageReader): Buffer {
  const values: Record<string, string> = {
    ...reader.values,
    to: reader.to,
    date: reader.date.toUTCString().replace(/GMT$/, '+0000'),
    message_id: reader.messageId,
  };
  const parts: Buffer[] = [];
  for (const piece of prepared.pieces) {
    if (Buffer.isBuffer(piece)) {
      parts.push(piece);
    } else if (piece.encoding === 'header') {
      parts.push(Buffer.from(headerSafe(values[piece.value] ?? ''), 'utf8'));
    } else {
      const value = values[piece.value] ?? '';
      const encoded = encodeQuotedPrintable(piece.encoding === 'html' ? escapeHtml(value) : value);
      parts.push(Buffer.from(wrapQuotedPrintable(encoded, LINE - 1), 'latin1'));
    }
  }
  return Buffer.concat(parts);
}

/**
 * A sender as nodemailer writes one: a name with commas or other specials quoted, a non-ASCII
 * name encoded whole (a bare comma would make two mailboxes), the domain in punycode.
 */
function mailbox({ name, address }: { name: string; address: string }): string {
  const at = address.lastIndexOf('@');
  const domain = address.slice(at + 1);
  const ascii = at < 0 ? address : `${address.slice(0, at)}@${domainToASCII(domain) || domain}`;
  if (!name) return ascii;
  let shown = name;
  if (!/^[\w ]*$/.test(name)) {
    shown = /^[\x20-\x7e]*$/.test(name)
      ? `"${name.replace(/(["\\])/g, '\\$1')}"`
      : encodeWord(name, 'Q', 52);
  }
  return `${shown} <${ascii}>`;
}

function header(name: string, value: string): string {
  return foldLines(`${name}: ${headerSafe(value)}`, LINE) + '\r\n';
}

// Nothing a reader or editor typed may start a new header line.
function headerSafe(value: string): string {
  return value.replace(/[\r\n\0]/g, ' ');
}
