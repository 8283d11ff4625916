import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Liquid, LiquidError } from 'liquidjs';
import { DomainError } from '../errors.ts';

export const DEFAULT_TEMPLATES_DIR = fileURLToPath(new URL('../../templates', import.meta.url));

/** Mail as compiled once: HTML and text with `%%{name}%%` placeholders still in them. */
export interface CompiledMail {
  html: string;
  text: string;
}

/** Mail after Liquid, before MJML: what the digest preview shows as `format=mjml`. */
export interface RenderedSource {
  mjml: string;
  text: string;
}

export class TemplateError extends DomainError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('unprocessable', 'template_invalid', message, details);
  }
}

const PLACEHOLDER = /%%\{([a-zA-Z][\w]*)\}%%/g;

interface MjmlIssue {
  line: number;
  message: string;
  tagName?: string;
}

/**
 * Fills MJML templates with Liquid (output escaped) and compiles them with mjml2html.
 * Templates are looked up in `templatesDir` first, then in the bundled `templates/`,
 * so a newsroom can replace one file without copying the rest.
 */
export class MailTemplates {
  private readonly html: Liquid;
  private readonly text: Liquid;
  private readonly line: Liquid;
  readonly roots: string[];

  constructor(templatesDir?: string) {
    this.roots = [templatesDir, DEFAULT_TEMPLATES_DIR].filter((dir): dir is string => Boolean(dir));
    const common = {
      root: this.roots,
      partials: this.roots,
      layouts: this.roots,
      strictFilters: true,
      cache: true,
    };
    this.html = new Liquid({ ...common, extname: '.mjml', outputEscape: 'escape' });
    this.text = new Liquid({ ...common, extname: '.txt' });
    this.text.registerFilter('wrap', (value: unknown, width: unknown = 72) =>
      wrapLines(String(value ?? ''), Number(width) || 72),
    );
    this.line = new Liquid({ strictFilters: true, cache: true });
  }

  /** Renders `name.mjml` and `name.txt`; slow (MJML), so call it once per send, not per reader. */
  async compile(name: string, data: Record<string, unknown>): Promise<CompiledMail> {
    const source = await this.render(name, data);
    return { html: await this.compileMjml(name, source.mjml), text: source.text };
  }

  /** Fills both templates with Liquid only; author-typed placeholders are neutralised here. */
  async render(name: string, data: Record<string, unknown>): Promise<RenderedSource> {
    const safeData = neutralisePlaceholders(data) as Record<string, unknown>;
    const mjml = await this.fill(this.html, name, '.mjml', safeData);
    const text = await this.fill(this.text, name, '.txt', safeData);
    return { mjml, text: tidyText(text) };
  }

  /** A one-line template such as a subject: Liquid without escaping, whitespace collapsed. */
  async renderLine(source: string, data: Record<string, unknown>, what: string): Promise<string> {
    try {
      const safeData = neutralisePlaceholders(data) as Record<string, unknown>;
      const line = await this.line.parseAndRender(source, safeData);
      return line.replace(/\s+/g, ' ').trim();
    } catch (error) {
      throw new TemplateError(`the ${what} template is not valid: ${(error as Error).message}`);
    }
  }

  async compileMjml(name: string, mjml: string): Promise<string> {
    try {
      // MJML weighs about 60 MB once loaded; processes that only deliver frozen mail never load it.
      const { default: mjml2html } = await import('mjml');
      const compiled = await mjml2html(mjml, { validationLevel: 'strict', keepComments: false });
      return compiled.html;
    } catch (error) {
      const issues = (error as { errors?: MjmlIssue[] }).errors ?? [];
      const first = issues[0];
      if (!first) {
        throw new TemplateError(
          `template ${this.locate(`${name}.mjml`)} is not valid MJML: ${(error as Error).message}`,
        );
      }
      const where = this.whereInSource(name, mjml, first);
      throw new TemplateError(
        `template ${where.file} is not valid MJML at line ${where.line}: ${first.message}`,
        { file: where.file, line: where.line, errors: issues },
      );
    }
  }

  private async fill(
    engine: Liquid,
    name: string,
    extension: string,
    data: Record<string, unknown>,
  ): Promise<string> {
    const file = this.locate(`${name}${extension}`);
    if (!existsSync(file)) {
      throw new TemplateError(`template ${name}${extension} is not in ${this.roots.join(' or ')}`, {
        file: `${name}${extension}`,
      });
    }
    try {
      return await engine.renderFile(name, data);
    } catch (error) {
      if (error instanceof LiquidError) {
        const [line] = error.token?.getPosition() ?? [];
        const at = error.token?.file ?? file;
        throw new TemplateError(
          `template ${at}${line ? ` line ${line}` : ''}: ${error.message.split(', line:')[0]}`,
          { file: at, line },
        );
      }
      throw new TemplateError(`template ${file} failed: ${(error as Error).message}`, { file });
    }
  }

  // MJML counts lines of the filled document (layout included); point the editor at the file they wrote.
  private whereInSource(
    name: string,
    mjml: string,
    issue: MjmlIssue,
  ): { file: string; line: number } {
    const renderedLine = (mjml.split('\n')[issue.line - 1] ?? '').trim();
    const files = [this.locate(`${name}.mjml`), this.locate('layout.mjml')].filter((file) =>
      existsSync(file),
    );
    const tag = issue.tagName ? `<${issue.tagName}` : undefined;
    for (const match of [
      (line: string) => line.trim() === renderedLine && renderedLine !== '',
      (line: string) => tag !== undefined && line.includes(tag),
    ]) {
      for (const file of files) {
        const index = readFileSync(file, 'utf8').split('\n').findIndex(match);
        if (index >= 0) return { file, line: index + 1 };
      }
    }
    return { file: files[0] ?? `${name}.mjml`, line: issue.line };
  }

  private locate(file: string): string {
    return this.roots.map((root) => `${root}/${file}`).find((path) => existsSync(path)) ?? file;
  }
}

interface SplitMail {
  html: string;
  text: string;
  htmlParts: string[];
  htmlKeys: string[];
  textParts: string[];
  textKeys: string[];
}

// Compiled mail is split at its placeholders once; each reader then costs a few concatenations.
const splits = new WeakMap<CompiledMail, SplitMail>();

// Callers that rebuild `{html, text}` per reader from the same strings still split only once.
let lastSplit: SplitMail | undefined;

function splitOf(mail: CompiledMail): SplitMail {
  const own = splits.get(mail);
  // The same string objects compare in constant time; equal copies would cost a full compare.
  if (own && own.html === mail.html && own.text === mail.text) return own;
  let split: SplitMail;
  if (lastSplit && lastSplit.html === mail.html && lastSplit.text === mail.text) {
    split = { ...lastSplit, html: mail.html, text: mail.text };
  } else {
    const [htmlParts, htmlKeys] = splitAtPlaceholders(mail.html);
    const [textParts, textKeys] = splitAtPlaceholders(mail.text);
    split = { html: mail.html, text: mail.text, htmlParts, htmlKeys, textParts, textKeys };
  }
  splits.set(mail, split);
  lastSplit = split;
  return split;
}

function splitAtPlaceholders(source: string): [string[], string[]] {
  const pieces = source.split(PLACEHOLDER);
  return [pieces.filter((_, i) => i % 2 === 0), pieces.filter((_, i) => i % 2 === 1)];
}

function join(parts: string[], keys: string[], value: (key: string) => string): string {
  let out = parts[0]!;
  for (let i = 0; i < keys.length; i++) out += value(keys[i]!) + parts[i + 1]!;
  return out;
}

/** Splices one reader's values into compiled mail; unknown placeholders become empty. */
export function personalise(mail: CompiledMail, values: Record<string, string>): CompiledMail {
  const split = splitOf(mail);
  return {
    html: join(split.htmlParts, split.htmlKeys, (key) => escapeHtml(values[key] ?? '')),
    text: join(split.textParts, split.textKeys, (key) => values[key] ?? ''),
  };
}

// An author who types %%{unsubscribe_url}%% in a headline gets it shown, not expanded.
export function neutralisePlaceholders(value: unknown): unknown {
  if (typeof value === 'string') return value.replaceAll('%%{', '%%\u200B{');
  if (Array.isArray(value)) return value.map(neutralisePlaceholders);
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    return Object.fromEntries(
      Object.entries(value).map(([key, inner]) => [key, neutralisePlaceholders(inner)]),
    );
  }
  return value;
}

const HTML_SPECIAL = /[&<>"']/;

export function escapeHtml(value: string): string {
  if (!HTML_SPECIAL.test(value)) return value;
  return value.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

/** Breaks prose at spaces so plain-text mail reads in any client; long words stay whole. */
export function wrapLines(text: string, width: number): string {
  return text
    .split('\n')
    .map((line) => {
      const out: string[] = [];
      let current = '';
      for (const word of line.split(' ')) {
        if (current && current.length + 1 + word.length > width) {
          out.push(current);
          current = word;
        } else current = current ? `${current} ${word}` : word;
      }
      out.push(current);
      return out.join('\n');
    })
    .join('\n');
}

function tidyText(text: string): string {
  return (
    text
      .replace(/[ \t]+\n/g, '\n')
      .replace(/\n{3,}/g, '\n\n')
      .trim() + '\n'
  );
}
