import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MailTemplates } from '../../src/digests/mail-templates.ts';
import { createTestApp, type TestApp } from '../helpers/test-app.ts';

let t: TestApp;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'broadsheet-brand-'));
  await writeFile(
    join(dir, 'digest.mjml'),
    `{% layout 'layout' %}{% block content %}<mj-section><mj-column><mj-text>THE BRANDED DIGEST {% for a in articles %}<a href="{{ a.url }}">{{ a.title }}</a>{% endfor %}</mj-text></mj-column></mj-section>{% endblock %}{% block footer %}<a href="%%{unsubscribe_url}%%">Leave</a>{% endblock %}`,
  );
  await writeFile(
    join(dir, 'digest.txt'),
    'THE BRANDED TEXT\n{% for a in articles %}{{ a.title }} {{ a.url }}\n{% endfor %}%%{unsubscribe_url}%%\n',
  );
  await writeFile(
    join(dir, 'broken.mjml'),
    '<mjml>\n<mj-body>\n<mj-section>\n<mj-column>\n<mj-bogus />\n</mj-column>\n</mj-section>\n</mj-body>\n</mjml>',
  );
  t = await createTestApp({ TEMPLATES_DIR: dir });
  await request(t.app)
    .post('/api/v1/newsletters')
    .set({ Authorization: `Bearer ${t.adminToken}` })
    .send({ slug: 'branded', name: 'Branded', digestWindow: 'hours' })
    .expect(201);
  await request(t.app)
    .post('/api/v1/articles')
    .set({ Authorization: `Bearer ${t.editorToken}` })
    .send({
      url: 'https://news.test/branded-story',
      title: 'A branded story',
      publishedAt: new Date(Date.now() - 60_000).toISOString(),
    })
    .expect(201);
});
afterAll(() => t.close());

const preview = (format: string) =>
  request(t.app)
    .get(`/api/v1/newsletters/branded/digest?format=${format}`)
    .set({ Authorization: `Bearer ${t.editorToken}` });

describe('TEMPLATES_DIR', () => {
  it('renders the newsroom’s own digest templates in the preview', async () => {
    const html = await preview('html');
    expect(html.status).toBe(200);
    expect(html.text).toContain('THE BRANDED DIGEST');
    expect(html.text).toContain('href="https://news.test/branded-story"');
    const text = await preview('text');
    expect(text.text).toContain('THE BRANDED TEXT');
    expect(text.text).toContain('http://news.test/unsubscribe/preview-sample-link');
  });

  it('answers 422 naming the file and line when a branded template is invalid', async () => {
    const brokenDir = await mkdtemp(join(tmpdir(), 'broadsheet-brand-broken-'));
    await writeFile(
      join(brokenDir, 'digest.mjml'),
      "{% layout 'layout' %}\n{% block content %}\n<mj-section>\n<mj-column>\n<mj-bogus />\n</mj-column>\n</mj-section>\n{% endblock %}",
    );
    const broken = await createTestApp({ TEMPLATES_DIR: brokenDir });
    try {
      await request(broken.app)
        .post('/api/v1/newsletters')
        .set({ Authorization: `Bearer ${broken.adminToken}` })
        .send({ slug: 'branded', name: 'Branded', digestWindow: 'hours' })
        .expect(201);
      await request(broken.app)
        .post('/api/v1/articles')
        .set({ Authorization: `Bearer ${broken.editorToken}` })
        .send({ url: 'https://news.test/x', title: 'X', publishedAt: new Date().toISOString() })
        .expect(201);
      const res = await request(broken.app)
        .get('/api/v1/newsletters/branded/digest')
        .set({ Authorization: `Bearer ${broken.editorToken}` });
      expect(res.status).toBe(422);
      expect(res.body.error).toMatchObject({
        code: 'template_invalid',
        message: `template ${brokenDir}/digest.mjml is not valid MJML at line 5: Element mj-bogus doesn't exist or is not registered`,
        details: { file: `${brokenDir}/digest.mjml`, line: 5 },
      });
    } finally {
      await broken.close();
    }
  });

  it('says which template is missing', async () => {
    await expect(new MailTemplates(dir).compile('no-such-mail', {})).rejects.toMatchObject({
      code: 'template_invalid',
      message: expect.stringMatching(/^template no-such-mail\.mjml is not in /),
    });
  });
});
