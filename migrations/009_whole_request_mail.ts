import { rewritingRequestSubscriptions } from './008_subscriber_lookup.ts';

/**
 * The confirmation mail now covers every newsletter the reader asked for, as the subscribe form
 * promises. It used to leave out the ones the address had already confirmed, but the web process
 * cannot know those before the statement runs: a reader confirmed on one of two newsletters cost a
 * second statement, and that extra round trip in the answer's timing told who was on a list.
 * Confirming a newsletter again changes nothing, so a mail that names it costs the reader nothing.
 * The statement no longer reads the address's subscriptions.
 *
 * The daily cap of confirmation mails now counts the inbox (email-address.ts `mailboxOf`), not the
 * subscriber: "ann+1@" and "ann+2@" are two subscribers but one person to flood. Requests for the
 * same inbox never share a batch, so each counter is hit once per statement.
 *
 * Instances of the previous release keep working while a rolling deploy replaces them: `states`
 * is still returned, always empty, so they draft the whole mail, which is what the new rule asks;
 * and a request without `mailbox` is capped by its address, which they never batch twice.
 */
const REPLACEMENTS: [string, string][] = [
  [
    `      states as (
        select subscribers.email_normalized, subscriptions.newsletter_id, subscriptions.status
        from subscriptions join subscribers on subscribers.id = subscriptions.subscriber_id
        where subscribers.email_normalized = any (array(select request.normalized from request))
      ),
      -- A draft holds when every hit is within its limit, every requested newsletter is active and
      -- unchanged, and exactly the ones the address has not confirmed are in the mail.`,
    `      -- A draft holds when every hit is within its limit, every requested newsletter is active and
      -- unchanged, and the mail covers every requested newsletter.`,
  ],
  [
    `          and not exists (
            select 1 from unnest(request.seen_ids) as wanted (newsletter_id)
            left join states on states.newsletter_id = wanted.newsletter_id
              and states.email_normalized = request.normalized
            where (wanted.newsletter_id = any(request.in_mail))
              = (states.status is not distinct from 'confirmed')
          ) as go`,
    `          and request.in_mail @> request.seen_ids and request.seen_ids @> request.in_mail as go`,
  ],
  [
    `          from found where found.slug = any(request.slugs)),
        (select coalesce(json_agg(json_build_object('newsletter_id', states.newsletter_id, 'status', states.status)), '[]')
          from states where states.email_normalized = request.normalized),`,
    `          from found where found.slug = any(request.slugs)),
        '[]'::json,`,
  ],
  [
    `          ord int, email text, normalized text, source text, ip text, user_agent text,`,
    `          ord int, email text, normalized text, mailbox text, source text, ip text, user_agent text,`,
  ],
  [
    `        select 'confirmation-mail:' || subscriber.id, 1, now() + make_interval(secs => $4::int)
        from subscriber
        where exists (
          select 1 from requested where requested.subscriber_id = subscriber.id and requested.status = 'pending')
        order by subscriber.id`,
    `        select 'confirmation-mail:' || coalesce(request.mailbox, request.normalized), 1,
          now() + make_interval(secs => $4::int)
        from subscriber join request on request.normalized = subscriber.email_normalized
        where exists (
          select 1 from requested where requested.subscriber_id = subscriber.id and requested.status = 'pending')
        order by 1`,
  ],
  [
    `          join cap on cap.key = 'confirmation-mail:' || subscriber.id,`,
    `          join cap on cap.key = 'confirmation-mail:' || coalesce(request.mailbox, request.normalized),`,
  ],
];

export const { up, down } = rewritingRequestSubscriptions(REPLACEMENTS);
