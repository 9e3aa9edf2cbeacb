// Sign-in: paste a token minted by tools/token (or open the address that
// `make run` prints, which carries it in #token=).

import * as auth from '../auth.js';
import { h, notice } from '../dom.js';

export default function signin(el, ctx) {
    const next = ctx.params.get('next');
    const target = next && next.startsWith('/app/') && !next.startsWith('/app/signin')
        ? next : '/app/live';
    if (auth.claims() && !ctx.message) {
        ctx.go(target, { replace: true });
        return;
    }

    const area = h('textarea', {
        id: 'token', name: 'token', rows: 5, dir: 'ltr', spellcheck: 'false',
        autocomplete: 'off', required: true, placeholder: 'eyJhbGciOiJIUzI1NiIs…',
    });
    const said = h('div', { class: 'said' }, ctx.message ? notice('warn', ctx.message) : null);
    const form = h('form', { class: 'card signin', onsubmit: (e) => {
        e.preventDefault();
        const why = auth.signIn(area.value);
        if (why) {
            said.replaceChildren(notice('error', why));
            area.focus();
            return;
        }
        ctx.go(target, { replace: true });
    } },
    h('h1', {}, 'כניסה למערכת'),
    h('p', { class: 'muted' },
      'הדביקו אסימון גישה (JWT) שהופק עבור העסק שלכם, למשל בפקודה ',
      h('code', { dir: 'ltr' }, 'tools/token --business 1 --role agent'), '.'),
    said,
    h('label', { for: 'token' }, 'אסימון גישה'),
    area,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'כניסה')),
    h('p', { class: 'muted small' },
      'האסימון נשמר בלשונית זו בלבד ונמחק כשסוגרים אותה.'));

    el.append(form);
    area.focus();
}
