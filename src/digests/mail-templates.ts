import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Liquid } from 'liquidjs';
import mjml2html from 'mjml';
import { DomainError } from '../errors.ts';

export const DEFAULT_TEMPLATES_DIR = fileURLToPath(new URL('../../templates', import.meta.url));

/** Mail as compiled once: HTML and text with `%%{name}%%` placeholders still in them. */
export interface CompiledMail {
  html: string;
  text: string;
}

export class TemplateError extends DomainError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('unprocessable', 'template_invalid', message, details);
  }
}

const PLACEHOLDER = /%%\{([a-zA-Z][\w]*)\}%%/g;

/**
 * Fills MJML templates with Liquid (output escaped) and compiles them with mjml2html.
 * Templates are looked up in `templatesDir` first, then in the bundled `templates/`,
 * so a newsroom can replace one file without copying the rest.
 */
export class MailTemplates {
  private readonly html: Liquid;
  private readonly text: Liquid;
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
  }

  /** Renders `name.mjml` and `name.txt`; slow (MJML), so call it once per send, not per reader. */
  async compile(name: string, data: Record<string, unknown>): Promise<CompiledMail> {
    const safeData = neutralisePlaceholders(data) as Record<string, unknown>;
    const file = this.locate(`${name}.mjml`);
    let source: string;
    let text: string;
    try {
      source = await this.html.renderFile(name, safeData);
      text = await this.text.renderFile(name, safeData);
    } catch (error) {
      throw new TemplateError(`template ${name} failed: ${(error as Error).message}`, { file });
    }
    let compiled: Awaited<ReturnType<typeof mjml2html>>;
    try {
      compiled = await mjml2html(source, { validationLevel: 'strict', keepComments: false });
    } catch (error) {
      const errors = (error as { errors?: { line: number; message: string }[] }).errors ?? [];
      const first = errors[0];
      throw new TemplateError(
        `template ${file} is not valid MJML${first ? ` at line ${first.line}: ${first.message}` : `: ${(error as Error).message}`}`,
        { file, errors },
      );
    }
    return { html: compiled.html, text: tidyText(text) };
  }

  private locate(file: string): string {
    return this.roots.map((root) => `${root}/${file}`).find((path) => existsSync(path)) ?? file;
  }
}

/** Splices one reader's values into compiled mail; unknown placeholders become empty. */
export function personalise(mail: CompiledMail, values: Record<string, string>): CompiledMail {
  return {
    html: mail.html.replace(PLACEHOLDER, (_, key: string) => escapeHtml(values[key] ?? '')),
    text: mail.text.replace(PLACEHOLDER, (_, key: string) => values[key] ?? ''),
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

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

function tidyText(text: string): string {
  return (
    text
      .replace(/[ \t]+\n/g, '\n')
      .replace(/\n{3,}/g, '\n\n')
      .trim() + '\n'
  );
}
