import express, { Router, type Request } from 'express';
import multer from 'multer';
import type { AppDeps } from '../http/deps.ts';
import * as newsletterService from '../newsletters/newsletters.service.ts';
import { subscriptionDepsOf } from '../subscriptions/deps.ts';
import { readerLinks } from '../subscriptions/links.ts';
import { requesterOf } from '../subscriptions/subscriptions.routes.ts';
import * as subscriptions from '../subscriptions/subscriptions.service.ts';
import { readingBody } from './form-body.ts';
import { pageErrors, pageTemplatesOf } from './pages.ts';

type Form = Record<string, string | string[] | undefined>;

/**
 * The pages behind the links in mail. A GET only shows a page with a button (link scanners
 * follow GETs); the button POSTs. The RFC 8058 one-click POST needs no cookie and gets a 200.
 */
export function readerPagesRouter(appDeps: AppDeps): Router {
  const { config } = appDeps;
  const deps = subscriptionDepsOf(appDeps);
  const pages = pageTemplatesOf(appDeps);
  const router = Router();
  const forms = [
    readingBody(express.urlencoded({ extended: false, limit: '10kb', parameterLimit: 200 })),
    readingBody(
      multer({ limits: { fieldSize: 10_000, fields: 200, files: 0, parts: 200 } }).none(),
    ),
  ];
  const tokenOf = (req: Request) => String(req.params.token ?? '');
  const formOf = (req: Request) => (req.body ?? {}) as Form;

  if (config.demoPage) {
    router.get('/', async (_req, res) => {
      const active = await newsletterService.listNewsletters(appDeps.db, { status: 'active' });
      await pages.send(res, 200, 'subscribe', {
        title: 'Subscribe to our newsletters',
        chosen: [],
        newsletters: active.map((newsletter) => ({
          slug: newsletter.slug,
          name: newsletter.name,
          description: newsletter.description,
          checked: active.length === 1,
        })),
      });
    });
  }

  router.get('/confirm/:token', async (req, res) => {
    const link = await subscriptions.inspectConfirmLink(deps, tokenOf(req));
    await pages.send(res, link.state === 'expired' ? 410 : 200, 'confirm', {
      title: 'Confirm your subscription',
      ...link,
      action: req.originalUrl,
    });
  });

  router.post('/confirm/:token', ...forms, async (req, res) => {
    if (firstOf(formOf(req).resend) === '1') {
      await subscriptions.resendConfirmation(deps, tokenOf(req));
      await pages.send(res, 200, 'confirm', { title: 'Check your inbox', state: 'resent' });
      return;
    }
    const outcome = await subscriptions.confirm(deps, tokenOf(req), requesterOf(req));
    await pages.send(res, outcome.state === 'expired' ? 410 : 200, 'confirm', {
      title: 'Your subscription',
      ...outcome,
      action: req.originalUrl,
    });
  });

  router.get('/unsubscribe/:token', async (req, res) => {
    const link = await subscriptions.inspectUnsubscribeLink(deps, tokenOf(req));
    await pages.send(res, 200, 'unsubscribe', {
      title: 'Unsubscribe',
      ...link,
      action: req.originalUrl,
      preferences_url: preferencesUrlFor(req),
    });
  });

  router.post('/unsubscribe/:token', ...forms, async (req, res) => {
    const form = formOf(req);
    const oneClick = firstOf(form['List-Unsubscribe']) === 'One-Click';
    const scope = !oneClick && firstOf(form.scope) === 'all' ? 'all' : 'newsletter';
    const outcome = await subscriptions.unsubscribe(deps, tokenOf(req), scope, {
      ...requesterOf(req),
      source: oneClick ? 'one-click (RFC 8058)' : 'unsubscribe page',
    });
    await pages.send(res, 200, 'unsubscribe', {
      title: 'You are unsubscribed',
      done: true,
      ...outcome,
      preferences_url: preferencesUrlFor(req),
    });
  });

  router.get('/preferences/:token', async (req, res) => {
    const current = await subscriptions.preferences(deps, tokenOf(req));
    await pages.send(res, 200, 'preferences', {
      title: 'Your newsletters',
      ...current,
      action: req.originalUrl,
    });
  });

  router.post('/preferences/:token', ...forms, async (req, res) => {
    const form = formOf(req);
    // An empty box means "leave it"; an empty or cut-off post must not mean "leave everything".
    if (firstOf(form.submitted) !== '1') {
      const current = await subscriptions.preferences(deps, tokenOf(req));
      await pages.send(res, 400, 'preferences', {
        title: 'Your newsletters',
        error: 'The form arrived incomplete, so nothing was changed. Please choose again and save.',
        ...current,
        action: req.originalUrl,
      });
      return;
    }
    const chosen = [...listOf(form.newsletters), ...listOf(form['newsletters[]'])];
    const saved = await subscriptions.savePreferences(deps, tokenOf(req), chosen, requesterOf(req));
    await pages.send(res, 200, 'preferences', {
      title: 'Your newsletters',
      saved: true,
      ...saved,
      action: req.originalUrl,
    });
  });

  // The unsubscribe page links to preferences for the same reader and newsletter.
  function preferencesUrlFor(req: Request): string | undefined {
    const check = subscriptions.claimsOfUnsubscribeLink(deps, tokenOf(req));
    if (!check) return undefined;
    return readerLinks(config, check).preferencesUrl;
  }

  // Only errors of these pages become pages; the JSON API keeps its own error answers.
  router.use(['/confirm', '/unsubscribe', '/preferences'], pageErrors(pages));
  return router;
}

function firstOf(value: string | string[] | undefined): string {
  return (Array.isArray(value) ? value[0] : value) ?? '';
}

function listOf(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).filter((item) => item !== '');
}
