import { expect } from 'chai';
import { bindValues, compileStatement, splitStatements } from '../../../adapters/db/index.js';
import { createMessage, type BusbarError } from '../../../lib/index.js';

describe('db adapter: named parameters', () => {
  it('replaces parameters by positional ones, binding a repeated name once', () => {
    const s = compileStatement('UPDATE t SET a = :body.a, b = :header.x-customer WHERE id = :body.a AND c = :id', 'postgres');
    expect(s.text).to.equal('UPDATE t SET a = $1, b = $2 WHERE id = $1 AND c = $3');
    const msg = createMessage({ a: 7 }, { id: 'm1', headers: { 'x-customer': "o'hara" } });
    expect(bindValues(s, msg)).to.deep.equal([7, "o'hara", 'm1']);
    expect(compileStatement('SELECT :body.a, :body.b', 'sqlite').text).to.equal('SELECT ?1, ?2');
  });

  it('leaves strings, quoted identifiers, comments, casts and dollar quotes alone', () => {
    const sql = `SELECT ':body.no', "col:body", x::text, $fn$ :body.no $fn$ -- :body.no\n/* :body.no */ FROM t WHERE y = :body.yes`;
    const s = compileStatement(sql, 'postgres');
    expect(s.params.map((p) => p.name)).to.deep.equal(['body.yes']);
    expect(s.text).to.equal(sql.replace(':body.yes', '$1'));
  });

  it('reads nested body paths and header names with dots; missing values bind as undefined (NULL)', () => {
    const s = compileStatement('INSERT INTO t VALUES (:body.customer.name, :header.busbar.timer.name, :body.missing.deep)', 'sqlite');
    const v = bindValues(s, createMessage({ customer: { name: 'Ada' } }, { headers: { 'busbar.timer.name': 'tick' } }));
    expect(v).to.deep.equal(['Ada', 'tick', undefined]);
  });

  it('rejects an unknown parameter root with DB_CONFIG naming it', () => {
    let err: BusbarError | undefined;
    try {
      compileStatement('DELETE FROM t WHERE id = :row.id', 'postgres');
    } catch (e) {
      err = e as BusbarError;
    }
    expect(err?.code).to.equal('BUSBAR_ERR_DB_CONFIG');
    expect(err?.details.parameter).to.equal('row.id');
  });

  it('splits a script at top-level semicolons only', () => {
    expect(splitStatements("INSERT INTO a VALUES ('x;y'); -- c;\nUPDATE b SET c = 1;  ")).to.deep.equal(["INSERT INTO a VALUES ('x;y')", '-- c;\nUPDATE b SET c = 1']);
  });
});
