import { Parser } from 'htmlparser2';

// Their content is never prose a reader should see.
const HIDDEN = new Set([
  'script',
  'style',
  'noscript',
  'template',
  'iframe',
  'object',
  'svg',
  'head',
]);
const BREAKS = new Set([
  'br',
  'p',
  'div',
  'li',
  'ul',
  'ol',
  'tr',
  'td',
  'th',
  'blockquote',
  'figure',
  'figcaption',
  'section',
  'article',
  'h1',
  'h2',
  'h3',
  'h4',
  'h5',
  'h6',
]);

export interface ReadText {
  /** What a reader sees: tags gone, character references decoded, whitespace collapsed. */
  text: string;
  /** True when the input held a tag, comment or processing instruction. */
  markup: boolean;
}

/** Reads a field that may hold HTML (a CMS summary, a feed description) as plain text. */
export function readText(source: string): ReadText {
  let text = '';
  let markup = false;
  let hidden = 0;
  const parser = new Parser(
    {
      onopentag(name) {
        markup = true;
        if (HIDDEN.has(name)) hidden += 1;
        else if (BREAKS.has(name)) text += ' ';
      },
      onclosetag(name) {
        if (HIDDEN.has(name)) hidden = Math.max(0, hidden - 1);
        else if (BREAKS.has(name)) text += ' ';
      },
      ontext(chunk) {
        if (hidden === 0) text += chunk;
      },
      oncomment() {
        markup = true;
      },
      onprocessinginstruction() {
        markup = true;
      },
    },
    { decodeEntities: true, lowerCaseTags: true },
  );
  parser.write(source);
  parser.end();
  // An unfinished tag at the end ("a<b") is swallowed by the parser without an event.
  return { text: collapseWhitespace(text), markup: markup || /<[a-zA-Z!/?]/.test(source) };
}

export function collapseWhitespace(value: string): string {
  return value
    .replace(/[\p{Cc}\p{Zs}\u2028\u2029]+/gu, ' ')
    .replace(/ {2,}/g, ' ')
    .trim();
}

/** Cuts prose at a word boundary so a digest teaser never ends mid-word. */
export function shorten(value: string, max: number): string {
  if (value.length <= max) return value;
  const cut = value.slice(0, max - 1);
  const space = cut.lastIndexOf(' ');
  return `${(space > max * 0.6 ? cut.slice(0, space) : cut).replace(/[\s,;:.–—-]+$/u, '')}…`;
}
