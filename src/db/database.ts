import type { ColumnType, Generated, Insertable, Kysely, Selectable, Transaction } from 'kysely';

type CreatedAt = ColumnType<Date, Date | string | undefined, never>;
type NullableTimestamp = ColumnType<
  Date | null,
  Date | string | null | undefined,
  Date | string | null
>;

export interface ApiTokensTable {
  id: Generated<number>;
  name: string;
  role: 'admin' | 'editor';
  token_hash: string;
  created_at: CreatedAt;
  last_used_at: NullableTimestamp;
  revoked_at: NullableTimestamp;
}

export interface NewslettersTable {
  id: Generated<number>;
  slug: string;
  name: string;
  description: ColumnType<string, string | undefined, string>;
  from_name: string;
  from_email: string;
  reply_to: string | null;
  locale: ColumnType<string, string | undefined, string>;
  status: ColumnType<
    'active' | 'archived',
    'active' | 'archived' | undefined,
    'active' | 'archived'
  >;
  created_at: CreatedAt;
  updated_at: ColumnType<Date, Date | string | undefined, Date | string>;
  digest_sections: ColumnType<string[], string[] | undefined, string[]>;
  digest_tags: ColumnType<string[], string[] | undefined, string[]>;
  digest_max_articles: ColumnType<number, number | undefined, number>;
  digest_window: ColumnType<DigestWindow, DigestWindow | undefined, DigestWindow>;
  digest_window_hours: ColumnType<number, number | undefined, number>;
  digest_subject: string | null;
  feed_url: string | null;
  feed_poll_minutes: ColumnType<number, number | undefined, number>;
  feed_next_poll_at: NullableTimestamp;
  feed_polled_at: NullableTimestamp;
  feed_last_error: string | null;
}

export type DigestWindow = 'since_last_send' | 'hours';

export interface ArticlesTable {
  id: Generated<number>;
  external_id: string | null;
  url: string;
  title: string;
  summary: ColumnType<string, string | undefined, string>;
  authors: ColumnType<string[], string[] | undefined, string[]>;
  image_url: string | null;
  image_alt: string | null;
  image_width: number | null;
  image_height: number | null;
  section: string | null;
  tags: ColumnType<string[], string[] | undefined, string[]>;
  published_at: ColumnType<Date, Date | string, Date | string>;
  updated_at: NullableTimestamp;
  source: ColumnType<string, string | undefined, string>;
  created_at: CreatedAt;
  ingested_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

export interface SubscribersTable {
  id: Generated<number>;
  email: string;
  email_normalized: string;
  status: ColumnType<
    'active' | 'blocklisted',
    'active' | 'blocklisted' | undefined,
    'active' | 'blocklisted'
  >;
  created_at: CreatedAt;
}

export type SubscriptionStatus = 'pending' | 'confirmed' | 'unsubscribed';

export interface SubscriptionsTable {
  subscriber_id: number;
  newsletter_id: number;
  status: SubscriptionStatus;
  requested_at: ColumnType<Date, Date | string | undefined, Date | string>;
  confirmed_at: NullableTimestamp;
  unsubscribed_at: NullableTimestamp;
  source: string | null;
}

export type ConsentAction =
  'requested' | 'confirmed' | 'unsubscribed' | 'bounced' | 'complained' | 'erased';

export interface ConsentEventsTable {
  id: Generated<number>;
  subscriber_id: number;
  newsletter_id: number | null;
  action: ConsentAction;
  occurred_at: CreatedAt;
  ip: string | null;
  user_agent: string | null;
  source: string | null;
  consent_text_version: string | null;
}

export interface SuppressionsTable {
  email_normalized: string;
  reason: 'hard_bounce' | 'complaint' | 'erasure' | 'manual';
  details: string | null;
  created_at: CreatedAt;
}

export type OutboxStatus = 'queued' | 'sending' | 'sent' | 'failed';

export interface OutboxTable {
  id: Generated<number>;
  kind: string;
  subscriber_id: number | null;
  to_address: string;
  /** Null when the mail is a shared body (body_id) with this row's token spliced in. */
  from_address: string | null;
  subject: string | null;
  html: string | null;
  text: string | null;
  headers: ColumnType<Record<string, string>, string | undefined, string>;
  body_id: number | null;
  token: string | null;
  status: ColumnType<OutboxStatus, OutboxStatus | undefined, OutboxStatus>;
  attempts: ColumnType<number, number | undefined, number>;
  next_attempt_at: ColumnType<Date, Date | string | undefined, Date | string>;
  lease_until: NullableTimestamp;
  last_error: string | null;
  message_id: string | null;
  created_at: CreatedAt;
  sent_at: NullableTimestamp;
}

export interface MailBodiesTable {
  id: Generated<number>;
  digest: string;
  from_address: string;
  subject: string;
  html: string;
  text: string;
  headers: ColumnType<Record<string, string>, string | undefined, string>;
  created_at: CreatedAt;
}

export interface RateLimitCountersTable {
  key: string;
  hits: number;
  expires_at: Date;
}

export type SendStatus = 'draft' | 'scheduled' | 'sending' | 'paused' | 'sent' | 'cancelled';
export type DeliveryStatus = 'queued' | 'sending' | 'sent' | 'failed' | 'skipped';

export interface SendsTable {
  id: Generated<number>;
  newsletter_id: number;
  status: ColumnType<SendStatus, SendStatus | undefined, SendStatus>;
  status_reason: string | null;
  subject: string;
  preheader: ColumnType<string, string | undefined, string>;
  html: string;
  text: string;
  article_ids: ColumnType<number[], number[] | undefined, number[]>;
  created_by: string | null;
  idempotency_key: string | null;
  request_fingerprint: string | null;
  scheduled_at: NullableTimestamp;
  started_at: NullableTimestamp;
  started_by: string | null;
  finished_at: NullableTimestamp;
  recipients: ColumnType<number, number | undefined, number>;
  window_sent: ColumnType<number, number | undefined, number>;
  window_failed: ColumnType<number, number | undefined, number>;
  created_at: CreatedAt;
  updated_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

export interface DeliveriesTable {
  send_id: number;
  subscriber_id: number;
  status: ColumnType<DeliveryStatus, DeliveryStatus | undefined, DeliveryStatus>;
  attempts: ColumnType<number, number | undefined, number>;
  reclaims: ColumnType<number, number | undefined, number>;
  next_attempt_at: ColumnType<Date, Date | string | undefined, Date | string>;
  lease_until: NullableTimestamp;
  last_error: string | null;
  message_id: string | null;
  sent_at: NullableTimestamp;
}

export interface DeliveryRateBucketsTable {
  transport: string;
  tokens: number;
  refreshed_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

export interface DeliveryConnectionSlotsTable {
  transport: string;
  slot: number;
  holder: string | null;
  lease_until: NullableTimestamp;
}

export interface DeliveryWorkersTable {
  id: string;
  seen_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

/** Every table of Broadsheet; features add theirs here beside their migration. */
export interface Database {
  api_tokens: ApiTokensTable;
  newsletters: NewslettersTable;
  subscribers: SubscribersTable;
  subscriptions: SubscriptionsTable;
  consent_events: ConsentEventsTable;
  suppressions: SuppressionsTable;
  outbox: OutboxTable;
  mail_bodies: MailBodiesTable;
  articles: ArticlesTable;
  sends: SendsTable;
  deliveries: DeliveriesTable;
  delivery_rate_buckets: DeliveryRateBucketsTable;
  delivery_connection_slots: DeliveryConnectionSlotsTable;
  delivery_workers: DeliveryWorkersTable;
  rate_limit_counters: RateLimitCountersTable;
}

export type Db = Kysely<Database> | Transaction<Database>;
export type NewsletterRow = Selectable<NewslettersTable>;
export type NewNewsletterRow = Insertable<NewslettersTable>;
export type ApiTokenRow = Selectable<ApiTokensTable>;
export type OutboxRow = Selectable<OutboxTable>;
export type SendRow = Selectable<SendsTable>;
export type DeliveryRow = Selectable<DeliveriesTable>;
export type ArticleRow = Selectable<ArticlesTable>;
