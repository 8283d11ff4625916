import { GroupCommit } from '../db/group-commit.ts';
import { MailTemplates } from '../digests/mail-templates.ts';
import type { AppDeps } from '../http/deps.ts';
import { parseSender } from '../newsletters/newsletters.service.ts';
import { ReaderMail } from './reader-mail.ts';
import { requestSubscriptions } from './subscriptions.repository.ts';
import { requestRules, type SubscriptionDeps } from './subscriptions.service.ts';

const made = new WeakMap<AppDeps, SubscriptionDeps>();

/** One set of subscription parts per app, so the API and the pages share compiled mail. */
export function subscriptionDepsOf(deps: AppDeps): SubscriptionDeps {
  let subscriptionDeps = made.get(deps);
  if (!subscriptionDeps) {
    const masthead = parseSender(deps.config.mailFrom).name;
    subscriptionDeps = {
      db: deps.db,
      config: deps.config,
      logger: deps.logger,
      mail: new ReaderMail(
        new MailTemplates(deps.config.templatesDir),
        masthead,
        deps.config.confirmLinkDays,
      ),
      seenNewsletters: new Map(),
      countersSweptAt: Date.now(),
      // One statement at a time: with two, the second left as soon as the first returned, with
      // the one or two readers who had arrived, and throughput halved (bench:subscribe). Holding
      // the second back until a full batch waited only matched one at a time.
      requests: new GroupCommit(
        (requests) => requestSubscriptions(deps.db, requests, requestRules(deps.config)),
        { maxBatch: 100, inFlight: 1, keyOf: (request) => request.mailbox },
      ),
    };
    made.set(deps, subscriptionDeps);
  }
  return subscriptionDeps;
}
