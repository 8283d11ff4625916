import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';

describe('configuration', () => {
  it('runs on embedded defaults with no environment at all', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 3000,
      dataDir: './data',
      databaseUrl: undefined,
      publicUrl: 'http://localhost:3000',
      smtpUrl: undefined,
      runWorker: true,
      demoPage: true,
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('refuses DATABASE_URL without SECRET and says why', () => {
    expect(() => loadConfig({ DATABASE_URL: 'postgres://db/broadsheet' })).toThrow(ConfigError);
    expect(() => loadConfig({ DATABASE_URL: 'postgres://db/broadsheet' })).toThrow(
      /SECRET is required when DATABASE_URL is set/,
    );
  });

  it.each([
    ['PORT', 'eighty', /PORT/],
    ['DATABASE_URL', 'mysql://db/x', /DATABASE_URL must start with postgres:\/\//],
    ['SMTP_URL', 'http://relay', /SMTP_URL must start with smtp:\/\/ or smtps:\/\//],
    ['SECRET', 'short', /SECRET must be at least 32 characters/],
    ['LOG_LEVEL', 'loud', /LOG_LEVEL/],
    ['RUN_WORKER', 'maybe', /RUN_WORKER/],
  ])('names %s when it is wrong', (name, value, message) => {
    expect(() => loadConfig({ [name]: value })).toThrow(message);
  });

  it('serves the demo page by default in embedded mode only', () => {
    const secret = 'x'.repeat(32);
    const postgres = { DATABASE_URL: 'postgres://db/broadsheet', SECRET: secret };
    expect(loadConfig(postgres).demoPage).toBe(false);
    expect(loadConfig({ ...postgres, DEMO_PAGE: 'true' }).demoPage).toBe(true);
    expect(loadConfig({ DEMO_PAGE: 'no' }).demoPage).toBe(false);
  });

  it('reads TRUST_PROXY as Express does and refuses what is not an address', () => {
    expect(loadConfig({}).trustProxy).toEqual(['loopback', 'linklocal', 'uniquelocal']);
    expect(loadConfig({ TRUST_PROXY: 'false' }).trustProxy).toBe(false);
    expect(loadConfig({ TRUST_PROXY: '2' }).trustProxy).toBe(2);
    expect(loadConfig({ TRUST_PROXY: '10.0.0.0/8, 2001:db8::/32' }).trustProxy).toEqual([
      '10.0.0.0/8',
      '2001:db8::/32',
    ]);
    expect(() => loadConfig({ TRUST_PROXY: 'my-load-balancer' })).toThrow(
      /TRUST_PROXY has an entry that is not an address.*my-load-balancer/,
    );
    expect(() => loadConfig({ TRUST_PROXY: '10.0.0.0/33' })).toThrow(/TRUST_PROXY/);
    expect(() => loadConfig({ TRUST_PROXY: '10.0.0.0/8/9' })).toThrow(/TRUST_PROXY/);
  });

  it('takes an empty variable as unset', () => {
    expect(loadConfig({ DATABASE_URL: '', SMTP_URL: '', PORT: '' })).toMatchObject({
      databaseUrl: undefined,
      smtpUrl: undefined,
      port: 3000,
    });
  });

  it('reads lists and trims the public URL', () => {
    const config = loadConfig({
      SITE_ORIGINS: 'https://a.example, https://b.example',
      PUBLIC_URL: 'https://news.example/',
    });
    expect(config.siteOrigins).toEqual(['https://a.example', 'https://b.example']);
    expect(config.publicUrl).toBe('https://news.example');
    expect(config.messageIdDomain).toBe('news.example');
  });
});
