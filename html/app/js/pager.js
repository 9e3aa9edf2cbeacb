// Pages of a list ({page, pages, total} from the API) as links, so the
// browser's back button and a shared address both land on the same page.

import { h, count } from './dom.js';

export function pager(data, href) {
    const page = data.page ?? 1;
    const pages = data.pages ?? 1;
    if (pages <= 1) {
        return h('p', { class: 'pager single' }, count(data.total), ' בסך הכול');
    }
    const link = (to, text, rel) => (to >= 1 && to <= pages && to !== page
        ? h('a', { href: href(to), rel, class: 'button' }, text)
        : h('span', { class: 'button disabled', 'aria-disabled': 'true' }, text));
    return h('nav', { class: 'pager', 'aria-label': 'דפים' },
             link(page - 1, '→ הקודם', 'prev'),
             h('span', { class: 'where' }, 'עמוד ', count(Math.min(page, Math.max(pages, 1))),
               ' מתוך ', count(Math.max(pages, 1)), ' · ', count(data.total), ' בסך הכול'),
             link(page + 1, 'הבא ←', 'next'));
}

// ?page= of the address, 1 when absent or not a page number
export function pageParam(params) {
    const n = Number(params.get('page'));
    return Number.isInteger(n) && n >= 1 && n <= 1000000 ? n : 1;
}
