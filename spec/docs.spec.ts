import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { renderReadme } from '../scripts/gen-docs.js';

describe('README', () => {
  it('has the error-code and adapter-option tables generated from the catalogue and schemas (run `npm run docs`)', () => {
    const readme = readFileSync('README.md', 'utf8');
    expect(readme === renderReadme(readme), 'README.md is out of date: run `npm run docs`').to.equal(true);
  });

  it('states the two set-up commands that .ci/run and a new user rely on', () => {
    const readme = readFileSync('README.md', 'utf8');
    const ci = readFileSync('.ci/run', 'utf8');
    expect(readme).to.contain('npm ci && npm run demo');
    expect(readme).to.contain('npm ci && npm test');
    expect(ci).to.contain('npm ci').and.contain('npm test');
  });
});
