import type { Article } from '../src/articles/articles.service.ts';

/** The ten articles every benchmark digest is made of (about 53 KB of HTML once rendered). */
export function sampleArticles(): Article[] {
  return Array.from({ length: 10 }, (_, i) => ({
    id: i + 1,
    externalId: `cms-${i + 1}`,
    url: `https://news.example.com/2026/11/26/a-story-about-the-budget-and-the-council-${i + 1}`,
    title: `Council agrees budget after a long night of talks, story number ${i + 1}`,
    summary:
      'Councillors met until the early hours to settle the spending plan for next year, ' +
      'with libraries, buses and road repairs at the centre of a debate that split the chamber. ' +
      'Here is what changes for residents, and what happens next.',
    authors: ['Ann Reporter', 'Bob Writer'],
    imageUrl: `https://cdn.news.example.com/images/2026/11/budget-${i + 1}.jpg`,
    imageAlt: 'Councillors leaving the chamber at dawn',
    imageWidth: 1200,
    imageHeight: 800,
    section: 'Politics',
    tags: ['budget', 'council'],
    publishedAt: new Date(Date.UTC(2026, 10, 26, 5, i)),
    updatedAt: null,
    source: 'api',
    createdAt: new Date(Date.UTC(2026, 10, 26, 5, i)),
  }));
}
