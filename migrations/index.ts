import type { Migration } from 'kysely';
import * as foundation from './001_foundation.ts';
import * as subscriptions from './002_subscriptions.ts';
import * as articles from './003_articles.ts';
import * as sends from './004_sends.ts';
import * as subscribeRequest from './005_subscribe_request.ts';
import * as deliveryClaims from './006_delivery_claims.ts';
import * as subscribeBatches from './007_subscribe_batches.ts';
import * as subscriberLookup from './008_subscriber_lookup.ts';
import * as wholeRequestMail from './009_whole_request_mail.ts';
import * as knownNewsletters from './010_known_newsletters.ts';

/** Every migration, by name; names sort in the order they run. */
export const migrations: Record<string, Migration> = {
  '001_foundation': foundation,
  '002_subscriptions': subscriptions,
  '003_articles': articles,
  '004_sends': sends,
  '005_subscribe_request': subscribeRequest,
  '006_delivery_claims': deliveryClaims,
  '007_subscribe_batches': subscribeBatches,
  '008_subscriber_lookup': subscriberLookup,
  '009_whole_request_mail': wholeRequestMail,
  '010_known_newsletters': knownNewsletters,
};
