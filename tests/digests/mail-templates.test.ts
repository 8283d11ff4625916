import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MailTemplates, personalise } from '../../src/digests/mail-templates.ts';

async function templatesWith(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'broadsheet-templates-'));
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  return dir;
}

const note = {
  'note.mjml': `{% layout 'layout' %}{% block content %}<mj-section><mj-column><mj-text>{{ headline }}</mj-text><mj-button href="%%{link}%%">Open</mj-button></mj-column></mj-section>{% endblock %}{% block footer %}footer{% endblock %}`,
  'note.txt': `{{ headline }}\nOpen: %%{link}%%\n`,
};

describe('mail templates', () => {
  it('escapes data, keeps placeholders and splices per-reader values', async () => {
    const templates = new MailTemplates(await templatesWith(note));
    const compiled = await templates.compile('note', {
      headline: 'Tom & Jerry <script>alert(1)</script>',
      title: 't',
      masthead: 'M',
    });
    expect(compiled.html).toContain('Tom &amp; Jerry &lt;script&gt;');
    expect(compiled.html).not.toContain('<script>');
    expect(compiled.text).toContain('Tom & Jerry <script>');
    const mail = personalise(compiled, { link: 'https://news.test/u?a=1&b="2"' });
    expect(mail.html).toContain('href="https://news.test/u?a=1&#38;b=&#34;2&#34;"');
    expect(mail.text).toContain('Open: https://news.test/u?a=1&b="2"');
  });

  it('neutralises a placeholder typed by an author', async () => {
    const templates = new MailTemplates(await templatesWith(note));
    const compiled = await templates.compile('note', {
      headline: 'see %%{link}%% now',
      title: 't',
      masthead: 'M',
    });
    const mail = personalise(compiled, { link: 'SECRET-LINK' });
    expect(mail.text.match(/SECRET-LINK/g)).toHaveLength(1);
    expect(mail.html.match(/SECRET-LINK/g)).toHaveLength(1);
  });

  it('names the file and line of invalid MJML', async () => {
    const dir = await templatesWith({
      'bad.mjml':
        '<mjml><mj-body>\n<mj-section><mj-column><mj-bogus /></mj-column></mj-section></mj-body></mjml>',
      'bad.txt': 'x',
    });
    const templates = new MailTemplates(dir);
    await expect(templates.compile('bad', {})).rejects.toThrow(
      /bad\.mjml is not valid MJML at line 2/,
    );
  });
});

describe('personalise', () => {
  const compiled = {
    html: '<a href="%%{unsubscribe_url}%%">U</a> <a href="%%{preferences_url}%%">P</a> %%{unsubscribe_url}%% %%{unknown}%%',
    text: 'U: %%{unsubscribe_url}%%\nP: %%{preferences_url}%%\n',
  };

  it('fills every occurrence, escapes for HTML only, empties unknown names', () => {
    const mail = personalise(compiled, {
      unsubscribe_url: 'https://news.test/u?a=1&b=<2>',
      preferences_url: 'https://news.test/p',
    });
    expect(mail.html).toBe(
      '<a href="https://news.test/u?a=1&#38;b=&#60;2&#62;">U</a> <a href="https://news.test/p">P</a> https://news.test/u?a=1&#38;b=&#60;2&#62; ',
    );
    expect(mail.text).toBe('U: https://news.test/u?a=1&b=<2>\nP: https://news.test/p\n');
  });

  it('gives each reader their own values, however the compiled mail is passed in', () => {
    for (let reader = 0; reader < 3; reader++) {
      const values = { unsubscribe_url: `u${reader}`, preferences_url: `p${reader}` };
      const same = personalise(compiled, values);
      const copy = personalise({ html: compiled.html, text: compiled.text }, values);
      expect(copy).toEqual(same);
      expect(same.text).toBe(`U: u${reader}\nP: p${reader}\n`);
    }
    const other = personalise(
      { html: 'x %%{preferences_url}%%', text: '%%{preferences_url}%%' },
      {
        preferences_url: 'p',
      },
    );
    expect(other).toEqual({ html: 'x p', text: 'p' });
  });
});
