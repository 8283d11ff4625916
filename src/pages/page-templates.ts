import { fileURLToPath } from 'node:url';
import type { Response } from 'express';
import { Liquid } from 'liquidjs';

const PAGES_DIR = fileURLToPath(new URL('../../templates/pages', import.meta.url));

/** Server-rendered reader pages: Liquid with every output escaped, no script needed to use them. */
export class PageTemplates {
  private readonly liquid = new Liquid({
    root: [PAGES_DIR],
    partials: [PAGES_DIR],
    layouts: [PAGES_DIR],
    extname: '.liquid',
    outputEscape: 'escape',
    strictFilters: true,
    cache: true,
  });

  constructor(private readonly site: { name: string }) {}

  async render(name: string, data: Record<string, unknown>): Promise<string> {
    return this.liquid.renderFile(name, { site: this.site, ...data }) as Promise<string>;
  }

  async send(res: Response, status: number, name: string, data: Record<string, unknown>) {
    const html = await this.render(name, data);
    res.status(status).type('html').setHeader('Cache-Control', 'no-store').send(html);
  }
}
