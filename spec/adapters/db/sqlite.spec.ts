import { dbSuite } from './suite.js';

describe('db adapter on SQLite', () => {
  dbSuite('sqlite');
});
