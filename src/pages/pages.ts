import type { ErrorRequestHandler } from 'express';
import { DomainError, type ErrorKind } from '../errors.ts';
import type { AppDeps } from '../http/deps.ts';
import { parseSender } from '../newsletters/newsletters.service.ts';
import { PageTemplates } from './page-templates.ts';

const made = new WeakMap<AppDeps, PageTemplates>();

export function pageTemplatesOf(deps: AppDeps): PageTemplates {
  let pages = made.get(deps);
  if (!pages) {
    pages = new PageTemplates({ name: parseSender(deps.config.mailFrom).name });
    made.set(deps, pages);
  }
  return pages;
}

const pageStatus: Partial<Record<ErrorKind, number>> = {
  invalid: 400,
  not_found: 404,
  gone: 410,
  too_large: 413,
  unsupported_media: 415,
  rate_limited: 429,
};

/** Readers see a page, not JSON, when something is wrong with what their browser sent. */
export function pageErrors(pages: PageTemplates): ErrorRequestHandler {
  return async (error, _req, res, next) => {
    if (error instanceof DomainError) {
      await pages.send(res, pageStatus[error.kind] ?? 400, 'problem', {
        title: error.code === 'invalid_link' ? 'This link does not work' : 'Something is not right',
        message: error.message,
      });
      return;
    }
    const status = (error as { status?: number }).status;
    // Body parsers report what they could not read with a 4xx status.
    if (status && status >= 400 && status < 500) {
      await pages.send(res, status, 'problem', {
        title: 'Something is not right',
        message: 'your browser sent a form we could not read; please try again',
      });
      return;
    }
    next(error);
  };
}
