import { rewritingRequestSubscriptions } from './008_subscriber_lookup.ts';

/**
 * request_subscriptions sent back every requested newsletter, description included, with every
 * request, though a request whose draft held was drafted from those very rows. Only a request
 * whose draft did not hold needs them now, to draft again.
 *
 * A request says it can do without them (`newsletters_known`); instances of the previous release
 * never say so and keep getting them while a rolling deploy replaces them.
 */
const REPLACEMENTS: [string, string][] = [
  [
    `          body_id bigint, payload_after text)`,
    `          body_id bigint, payload_after text, newsletters_known boolean)`,
  ],
  [
    `        (select coalesce(json_agg(json_build_object(
            'id', found.id, 'slug', found.slug, 'name', found.name, 'description', found.description,
            'locale', found.locale, 'status', found.status, 'updated_at', found.updated_at)), '[]')
          from found where found.slug = any(request.slugs)),`,
    `        case when verdict.go and request.newsletters_known then null else
          (select coalesce(json_agg(json_build_object(
            'id', found.id, 'slug', found.slug, 'name', found.name, 'description', found.description,
            'locale', found.locale, 'status', found.status, 'updated_at', found.updated_at)), '[]')
          from found where found.slug = any(request.slugs)) end,`,
  ],
];

export const { up, down } = rewritingRequestSubscriptions(REPLACEMENTS);
