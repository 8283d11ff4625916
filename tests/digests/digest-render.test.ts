import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Article } from '../../src/articles/articles.service.ts';
import {
  DIGEST_HTML_LIMIT,
  renderDigest,
  type DigestNewsletter,
} from '../../src/digests/digest-content.ts';
import { MailTemplates, personalise } from '../../src/digests/mail-templates.ts';

const templates = new MailTemplates();
const newsletter: DigestNewsletter = {
  slug: 'morning-briefing',
  name: 'Morning Briefing',
  locale: 'en-GB',
  digestSubject: null,
};
const options = { issuedAt: new Date('2026-11-26T06:00:00Z'), timeZone: 'Europe/London' };
const links = {
  unsubscribe_url: 'https://news.test/unsubscribe/READER-TOKEN',
  preferences_url: 'https://news.test/preferences/READER-TOKEN',
};

function article(id: number, extra: Partial<Article> = {}): Article {
  return {
    id,
    externalId: null,
    url: `https://news.test/2026/story-${id}`,
    title: `Headline ${id}`,
    summary: `Summary of story ${id}.`,
    authors: ['Ann Reporter', 'Bob Writer'],
    imageUrl: `https://cdn.news.test/${id}.jpg`,
    imageAlt: `Photo ${id}`,
    imageWidth: 1200,
    imageHeight: 800,
    section: 'Politics',
    tags: [],
    publishedAt: new Date('2026-11-26T05:00:00Z'),
    updatedAt: null,
    source: 'api',
    createdAt: new Date('2026-11-26T05:00:00Z'),
    ...extra,
  };
}

async function templatesWith(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'broadsheet-digest-templates-'));
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  return dir;
}

describe('digest rendering', () => {
  it('carries every article with absolute links, a text part, preheader and lang', async () => {
    const articles = [1, 2, 3].map((id) => article(id));
    const digest = await renderDigest(templates, newsletter, articles, options);
    expect(digest.subject).toBe('Morning Briefing: Headline 1');
    expect(digest.preheader).toBe('Headline 2 · Headline 3');
    expect(digest.articleIds).toEqual([1, 2, 3]);
    expect(digest.html).toMatch(/<html[^>]* lang="en-GB"/);
    expect(digest.html).toContain('Headline 2 · Headline 3');
    for (const a of articles) {
      expect(digest.html).toContain(`href="${a.url}"`);
      expect(digest.text).toContain(a.title);
      expect(digest.text).toContain(`Read the full story: ${a.url}`);
    }
    const targets = [...digest.html.matchAll(/\s(?:href|src)="([^"]*)"/g)].map((m) => m[1]!);
    expect(targets.length).toBeGreaterThan(6);
    for (const target of targets) expect(target).toMatch(/^(https:\/\/|%%\{\w+\}%%$)/);
    expect(digest.text).toContain('By Ann Reporter and Bob Writer · 26 Nov 2026, 05:00');
    expect(digest.text).toContain('Morning Briefing · 26 November 2026');
  });

  it('wraps the text part at 72 columns, never inside a link', async () => {
    const digest = await renderDigest(
      templates,
      newsletter,
      [article(1, { summary: 'A sentence of ordinary words that goes on. '.repeat(12) })],
      options,
    );
    for (const line of digest.text.split('\n')) {
      if (!/https?:\/\/|%%\{/.test(line)) expect(line.length).toBeLessThanOrEqual(72);
    }
    expect(digest.text).toContain('Read the full story: https://news.test/2026/story-1\n');
  });

  it('always has a preheader: the lead summary for one article, else the masthead', async () => {
    const one = await renderDigest(templates, newsletter, [article(1)], options);
    expect(one.preheader).toBe('Summary of story 1.');
    const bare = await renderDigest(templates, newsletter, [article(1, { summary: '' })], options);
    expect(bare.preheader).toBe('Morning Briefing · 26 November 2026');
  });

  it('gives every image a width, a height in its own proportions and alt text', async () => {
    const digest = await renderDigest(
      templates,
      newsletter,
      [article(1), article(2, { imageWidth: null, imageHeight: null, imageAlt: null })],
      options,
    );
    const images = [...digest.html.matchAll(/<img [^>]*>/g)].map((m) => m[0]);
    expect(images).toHaveLength(2);
    expect(images[0]).toMatch(/alt="Photo 1"/);
    expect(images[0]).toMatch(/width="568"/);
    expect(images[0]).toMatch(/height="379"/);
    // Without an alt text the headline describes the picture.
    expect(images[1]).toMatch(/alt="Headline 2"/);
    expect(images[1]).toMatch(/height="379"/);
  });

  it('puts a visible unsubscribe and preferences link in the footer, spliced per reader', async () => {
    const digest = await renderDigest(templates, newsletter, [article(1)], options);
    expect(digest.html).toContain('href="%%{unsubscribe_url}%%"');
    expect(digest.html).toContain('href="%%{preferences_url}%%"');
    const mail = personalise(digest, links);
    expect(mail.html).toMatch(
      /<a href="https:\/\/news.test\/unsubscribe\/READER-TOKEN"[^>]*>Unsubscribe<\/a>/,
    );
    expect(mail.html).toMatch(
      /<a href="https:\/\/news.test\/preferences\/READER-TOKEN"[^>]*>Manage your newsletters<\/a>/,
    );
    expect(mail.text).toContain('Unsubscribe: https://news.test/unsubscribe/READER-TOKEN');
    expect(mail.text).toContain(
      'Manage your newsletters: https://news.test/preferences/READER-TOKEN',
    );
  });

  it('links "view in browser" only when an archive URL is configured', async () => {
    const without = await renderDigest(templates, newsletter, [article(1)], options);
    expect(without.html).not.toContain('View this issue in your browser');
    const withArchive = await renderDigest(templates, newsletter, [article(1)], {
      ...options,
      archiveUrl: 'https://news.test/newsletters/{newsletter}/{date}',
    });
    expect(withArchive.html).toContain(
      'href="https://news.test/newsletters/morning-briefing/2026-11-26"',
    );
    expect(withArchive.text).toContain(
      'View this issue in your browser: https://news.test/newsletters/morning-briefing/2026-11-26',
    );
  });

  it('renders a headline with <script>, &, quotes and emoji as text, not markup', async () => {
    const title = `Tom & Jerry's "big" day <script>alert(1)</script> 🎉`;
    const digest = await renderDigest(
      templates,
      newsletter,
      [article(1, { title, summary: 'Fish & chips <img src=x onerror=alert(1)>' })],
      options,
    );
    expect(digest.html).not.toMatch(/<script/i);
    expect(digest.html).not.toContain('<img src=x');
    expect(digest.html).toContain(
      'Tom &amp; Jerry&#39;s &#34;big&#34; day &lt;script&gt;alert(1)&lt;/script&gt; 🎉',
    );
    expect(digest.text).toContain(title);
    expect(digest.subject).toBe(`Morning Briefing: ${title}`);
  });

  it('neutralises a placeholder typed into an article instead of expanding it', async () => {
    const digest = await renderDigest(
      templates,
      newsletter,
      [
        article(1, {
          title: 'Click %%{unsubscribe_url}%% now',
          summary: 'or %%{preferences_url}%%',
        }),
      ],
      options,
    );
    const mail = personalise(digest, links);
    expect(mail.html.match(/unsubscribe\/READER-TOKEN/g)).toHaveLength(1);
    expect(mail.html.match(/preferences\/READER-TOKEN/g)).toHaveLength(1);
    expect(mail.text.match(/READER-TOKEN/g)).toHaveLength(2);
    expect(mail.text).toContain('Click %%\u200B{unsubscribe_url}%% now');
  });

  it('fails above 90 KB of HTML with a message saying so', async () => {
    const many = Array.from({ length: 50 }, (_, i) =>
      article(i + 1, {
        title: `A long headline number ${i} `.repeat(8),
        summary: 'words '.repeat(60),
      }),
    );
    await expect(renderDigest(templates, newsletter, many, options)).rejects.toMatchObject({
      kind: 'unprocessable',
      code: 'digest_too_large',
      message: expect.stringMatching(/over the 90 KB limit/),
      details: { limit: DIGEST_HTML_LIMIT },
    });
  });

  it('stays under the limit with ten full articles', async () => {
    const ten = Array.from({ length: 10 }, (_, i) =>
      article(i + 1, {
        title: 'A headline of ordinary length for a news story',
        summary: 'word '.repeat(80),
      }),
    );
    const digest = await renderDigest(templates, newsletter, ten, options);
    expect(Buffer.byteLength(digest.html)).toBeLessThan(DIGEST_HTML_LIMIT);
  });

  it('uses a subject template when the newsletter has one', async () => {
    const digest = await renderDigest(
      templates,
      { ...newsletter, digestSubject: '{{ newsletter.name }} – {{ date }} – {{ count }} stories' },
      [article(1), article(2)],
      options,
    );
    expect(digest.subject).toBe('Morning Briefing – 26 November 2026 – 2 stories');
  });
});

describe('templates from TEMPLATES_DIR', () => {
  it('uses a newsroom digest template and falls back to the bundled layout', async () => {
    const dir = await templatesWith({
      'digest.mjml': `{% layout 'layout' %}{% block content %}<mj-section><mj-column><mj-text>BRANDED {% for a in articles %}<a href="{{ a.url }}">{{ a.title }}</a>{% endfor %}</mj-text></mj-column></mj-section>{% endblock %}{% block footer %}<a href="%%{unsubscribe_url}%%">Leave</a>{% endblock %}`,
    });
    const digest = await renderDigest(new MailTemplates(dir), newsletter, [article(1)], options);
    expect(digest.html).toContain('BRANDED');
    expect(digest.html).toContain('href="https://news.test/2026/story-1"');
    // The text part was not replaced, so the bundled one is used.
    expect(digest.text).toContain('Read the full story: https://news.test/2026/story-1');
  });

  it('names the file and line of a template that fails MJML validation', async () => {
    const dir = await templatesWith({
      'digest.mjml': [
        "{% layout 'layout' %}",
        '{% block content %}',
        '<mj-section>',
        '  <mj-column>',
        '    <mj-text>{{ articles[0].title }}</mj-text>',
        '    <mj-unknown-thing />',
        '  </mj-column>',
        '</mj-section>',
        '{% endblock %}',
      ].join('\n'),
    });
    const failure = renderDigest(new MailTemplates(dir), newsletter, [article(1)], options);
    await expect(failure).rejects.toMatchObject({ code: 'template_invalid' });
    await expect(failure).rejects.toThrow(
      `template ${dir}/digest.mjml is not valid MJML at line 6`,
    );
  });

  it('names the file and line of a Liquid syntax error', async () => {
    const dir = await templatesWith({
      'digest.mjml': "{% layout 'layout' %}\n{% block content %}\n{% if %}\n{% endblock %}",
    });
    const failure = renderDigest(new MailTemplates(dir), newsletter, [article(1)], options);
    await expect(failure).rejects.toMatchObject({ code: 'template_invalid' });
    await expect(failure).rejects.toThrow(/digest\.mjml line 3/);
  });
});
