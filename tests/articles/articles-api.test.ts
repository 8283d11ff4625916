import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTICLE_BATCH_LIMIT } from '../../src/articles/articles.schemas.ts';
import { createTestApp, type TestApp } from '../helpers/test-app.ts';

let t: TestApp;
const editor = () => ({ Authorization: `Bearer ${t.editorToken}` });
const articleCount = async () =>
  Number(
    (
      await t.database.db
        .selectFrom('articles')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  );

const story = (n: number, extra: Record<string, unknown> = {}) => ({
  url: `https://news.test/2026/story-${n}`,
  title: `Story ${n}`,
  summary: `What happened in story ${n}.`,
  authors: ['Ann Reporter'],
  imageUrl: `https://cdn.news.test/story-${n}.jpg`,
  imageAlt: `Photo for story ${n}`,
  section: 'Politics',
  tags: ['Budget'],
  publishedAt: new Date(Date.UTC(2026, 10, 20, 8, n)).toISOString(),
  ...extra,
});

beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

describe('article upsert', () => {
  it('creates an article, then replaces it when the same url is pushed again', async () => {
    const created = await request(t.app).post('/api/v1/articles').set(editor()).send(story(1));
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      url: 'https://news.test/2026/story-1',
      title: 'Story 1',
      authors: ['Ann Reporter'],
      section: 'Politics',
      tags: ['budget'],
      publishedAt: '2026-11-20T08:01:00.000Z',
      externalId: null,
      source: 'api',
    });
    const again = await request(t.app)
      .post('/api/v1/articles')
      .set(editor())
      .send(
        story(1, { title: 'Story 1, updated', url: 'https://news.test/2026/story-1#comments' }),
      );
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(created.body.id);
    expect(again.body.title).toBe('Story 1, updated');
    const rows = await t.database.db
      .selectFrom('articles')
      .select(['title', 'authors', 'tags'])
      .where('url', '=', 'https://news.test/2026/story-1')
      .execute();
    expect(rows).toEqual([
      { title: 'Story 1, updated', authors: ['Ann Reporter'], tags: ['budget'] },
    ]);
  });

  it('keys by externalId so a changed url updates the same article', async () => {
    const first = await request(t.app)
      .post('/api/v1/articles')
      .set(editor())
      .send(story(2, { externalId: 'cms-2' }));
    expect(first.status).toBe(201);
    const moved = await request(t.app)
      .post('/api/v1/articles')
      .set(editor())
      .send(story(2, { externalId: 'cms-2', url: 'https://news.test/2026/story-2-renamed' }));
    expect(moved.status).toBe(200);
    expect(moved.body).toMatchObject({
      id: first.body.id,
      url: 'https://news.test/2026/story-2-renamed',
    });
  });

  it('refuses a url that belongs to another externalId with 409 url_taken', async () => {
    await request(t.app)
      .post('/api/v1/articles')
      .set(editor())
      .send(story(3, { externalId: 'cms-3' }))
      .expect(201);
    const clash = await request(t.app)
      .post('/api/v1/articles')
      .set(editor())
      .send(story(3, { externalId: 'cms-other' }));
    expect(clash.status).toBe(409);
    expect(clash.body.error.code).toBe('url_taken');
  });

  it('stores a batch all at once and reports what it created and updated', async () => {
    const res = await request(t.app)
      .post('/api/v1/articles')
      .set(editor())
      .send({ articles: [story(1), story(10), story(11)] });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ created: 2, updated: 1 });
    expect(res.body.articles).toHaveLength(3);
  });

  it('stores nothing of a batch when one article is bad', async () => {
    const before = await articleCount();
    const res = await request(t.app)
      .post('/api/v1/articles')
      .set(editor())
      .send({ articles: [story(20), story(21, { url: 'javascript:alert(1)' })] });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/articles\.1\.url/);
    expect(await articleCount()).toBe(before);
  });

  it('stores nothing of a batch that hits a conflict halfway', async () => {
    const before = await articleCount();
    const res = await request(t.app)
      .post('/api/v1/articles')
      .set(editor())
      .send({ articles: [story(30), story(3, { externalId: 'cms-someone-else' })] });
    expect(res.status).toBe(409);
    expect(await articleCount()).toBe(before);
  });

  it('strips HTML from a summary and decodes character references', async () => {
    const res = await request(t.app)
      .post('/api/v1/articles')
      .set(editor())
      .send(
        story(40, {
          title: 'Tom &amp; Jerry’s “big” day 🎉',
          summary:
            '<p>Markets <b>rallied</b> &amp; fell.</p><script>alert(1)</script><p>Then calm.</p>',
        }),
      );
    expect(res.status).toBe(201);
    expect(res.body.title).toBe('Tom & Jerry’s “big” day 🎉');
    expect(res.body.summary).toBe('Markets rallied & fell. Then calm.');
  });

  it.each([
    ['an ftp url', { url: 'ftp://news.test/x' }],
    ['a javascript url', { url: 'javascript:alert(1)' }],
    ['a relative url', { url: '/2026/story' }],
    ['a url with credentials', { url: 'https://user:pw@news.test/x' }],
    ['a data image', { imageUrl: 'data:image/png;base64,AAAA' }],
    ['HTML in the title', { title: 'Budget <script>alert(1)</script>' }],
    ['a tag in an author', { authors: ['<b>Ann</b>'] }],
    ['an empty title', { title: '   ' }],
    ['a title that is too long', { title: 'x'.repeat(301) }],
    ['a summary that is too long', { summary: 'y'.repeat(2001) }],
    ['eleven authors', { authors: Array.from({ length: 11 }, (_, i) => `Author ${i}`) }],
    ['a date without a time zone', { publishedAt: '2026-11-20T08:00:00' }],
    ['a date that does not exist', { publishedAt: '2026-02-30T08:00:00Z' }],
    ['a date in words', { publishedAt: 'yesterday' }],
    ['a date far in the future', { publishedAt: '2099-01-01T00:00:00Z' }],
    ['a missing date', { publishedAt: undefined }],
    ['an image width without a height', { imageWidth: 800 }],
    ['an unknown field', { colour: 'red' }],
    ['tags that are not a list', { tags: 'budget' }],
  ])('refuses %s with 400 and stores nothing', async (_label, change) => {
    const before = await articleCount();
    const res = await request(t.app).post('/api/v1/articles').set(editor()).send(story(50, change));
    expect(res.status).toBe(400);
    expect(res.body.error.code).toMatch(/^(invalid_request|unknown_field)$/);
    expect(res.body.error.message).toEqual(expect.any(String));
    expect(await articleCount()).toBe(before);
  });

  it('refuses a batch over the limit, an empty batch and duplicates within a batch', async () => {
    const before = await articleCount();
    const tooMany = Array.from({ length: ARTICLE_BATCH_LIMIT + 1 }, (_, i) => ({
      url: `https://news.test/b/${i}`,
      title: `B${i}`,
      publishedAt: '2026-11-20T08:00:00Z',
    }));
    const big = await request(t.app)
      .post('/api/v1/articles')
      .set(editor())
      .send({ articles: tooMany });
    expect(big.status).toBe(400);
    const empty = await request(t.app)
      .post('/api/v1/articles')
      .set(editor())
      .send({ articles: [] });
    expect(empty.status).toBe(400);
    const twice = await request(t.app)
      .post('/api/v1/articles')
      .set(editor())
      .send({ articles: [story(60), story(60)] });
    expect(twice.status).toBe(400);
    expect(twice.body.error.code).toBe('duplicate_article');
    expect(await articleCount()).toBe(before);
  });

  it('stores one article when the same new article is pushed many times at once', async () => {
    const answers = await Promise.all(
      Array.from({ length: 6 }, () =>
        request(t.app).post('/api/v1/articles').set(editor()).send(story(80)),
      ),
    );
    expect(answers.map((res) => res.status).sort()).toEqual([200, 200, 200, 200, 200, 201]);
    const rows = await t.database.db
      .selectFrom('articles')
      .select('id')
      .where('url', '=', 'https://news.test/2026/story-80')
      .execute();
    expect(rows).toHaveLength(1);
  });

  it('needs an editor token', async () => {
    const res = await request(t.app).post('/api/v1/articles').send(story(70));
    expect(res.status).toBe(401);
  });
});

describe('article list', () => {
  beforeAll(async () => {
    const batch = Array.from({ length: 7 }, (_, i) =>
      story(100 + i, {
        section: i % 2 ? 'Sport' : 'World',
        tags: i % 3 === 0 ? ['Election'] : [],
        publishedAt: new Date(Date.UTC(2026, 10, 25, 12, i)).toISOString(),
      }),
    );
    await request(t.app)
      .post('/api/v1/articles')
      .set(editor())
      .send({ articles: batch })
      .expect(200);
  });

  it('pages newest first with a cursor until the end', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: request.Response = await request(t.app)
        .get('/api/v1/articles')
        .query({ since: '2026-11-25T00:00:00Z', limit: 3, ...(cursor ? { cursor } : {}) })
        .set(editor());
      expect(res.status).toBe(200);
      seen.push(...res.body.articles.map((a: { url: string }) => a.url));
      cursor = res.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual(
      Array.from({ length: 7 }, (_, i) => `https://news.test/2026/story-${106 - i}`),
    );
  });

  it('filters by section (any case) and tag', async () => {
    const sport = await request(t.app).get('/api/v1/articles?section=sport').set(editor());
    expect(sport.body.articles.map((a: { section: string }) => a.section)).toEqual([
      'Sport',
      'Sport',
      'Sport',
    ]);
    const election = await request(t.app).get('/api/v1/articles?tag=Election').set(editor());
    expect(election.body.articles.map((a: { url: string }) => a.url)).toEqual([
      'https://news.test/2026/story-106',
      'https://news.test/2026/story-103',
      'https://news.test/2026/story-100',
    ]);
  });

  it.each([
    ['a forged cursor', 'cursor=bm90LWEtY3Vyc29y', 'invalid_cursor'],
    ['a limit too high', 'limit=1000', 'invalid_request'],
    ['a loose date', 'since=last%20week', 'invalid_request'],
    ['an unknown filter', 'author=ann', 'unknown_field'],
  ])('refuses %s with 400', async (_label, query, code) => {
    const res = await request(t.app).get(`/api/v1/articles?${query}`).set(editor());
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe(code);
  });
});
