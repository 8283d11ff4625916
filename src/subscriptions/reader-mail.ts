import type { CompiledMail, MailTemplates } from '../digests/mail-templates.ts';

export interface MailNewsletter {
  id: number;
  name: string;
  description: string;
  locale: string;
  updated_at: Date | string;
}

const MAX_CACHED = 200;

/**
 * Compiles the confirmation and welcome mails once per newsletter set (MJML costs ~20 ms) and
 * keeps them; a newsletter's update time is part of the key, so an edit is picked up at once.
 * The cache only saves work: every instance compiles the same mail from the same rows.
 */
export class ReaderMail {
  private readonly compiled = new Map<string, Promise<unknown>>();

  constructor(
    private readonly templates: MailTemplates,
    private readonly masthead: string,
    private readonly expiryDays: number,
  ) {}

  confirmation(newsletters: MailNewsletter[]): Promise<CompiledMail> {
    const key = `confirmation:${newsletters.map(versionOf).join(',')}`;
    return this.cached(key, () =>
      this.templates.compile('confirmation', {
        title: 'Please confirm your subscription',
        preheader: 'One click to confirm, then you are on the list.',
        masthead: this.masthead,
        locale: newsletters[0]?.locale ?? 'en',
        expiry_days: this.expiryDays,
        newsletters: newsletters.map(({ name, description }) => ({ name, description })),
      }),
    );
  }

  /**
   * The confirmation mail everyone asking for these newsletters gets, but for the link token,
   * stored once by `save` (which returns its id) and remembered.
   */
  sharedConfirmation(
    newsletters: MailNewsletter[],
    save: (mail: CompiledMail) => Promise<number>,
  ): Promise<number> {
    const key = `confirmation-body:${newsletters.map(versionOf).join(',')}`;
    return this.cached(key, async () => save(await this.confirmation(newsletters)));
  }

  welcome(newsletter: MailNewsletter): Promise<CompiledMail> {
    return this.cached(`welcome:${versionOf(newsletter)}`, () =>
      this.templates.compile('welcome', {
        title: `Welcome to ${newsletter.name}`,
        masthead: this.masthead,
        locale: newsletter.locale,
        newsletter: { name: newsletter.name, description: newsletter.description },
      }),
    );
  }

  private cached<T>(key: string, make: () => Promise<T>): Promise<T> {
    let made = this.compiled.get(key) as Promise<T> | undefined;
    if (!made) {
      if (this.compiled.size >= MAX_CACHED) this.compiled.clear();
      made = make();
      this.compiled.set(key, made);
      made.catch(() => this.compiled.delete(key));
    }
    return made;
  }
}

function versionOf(newsletter: MailNewsletter): string {
  return `${newsletter.id}@${new Date(newsletter.updated_at).getTime()}`;
}
