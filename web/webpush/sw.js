// tilecast's service worker for Web Push (copy it into your app; see
// README "Web Push: the service worker and the example page").
//
// A push carries the JSON tilecast builds (notify/webpush):
//   {"kind":"toast","title","body","url","icon","tag"}
//   {"kind":"tile","count","title","body","image","url"}
// A toast is shown as a notification; clicking it opens url (resolved
// against the worker's scope; only http and https). A tile sets the app
// badge from count (navigator.setAppBadge, where the browser has it; 0
// clears it) and stores the latest tile content in the Cache API under
// TILE_KEY, where the app's page reads it. Open pages get a message once
// a toast or tile is shown ({type: "tilecast-toast"|"tilecast-tile"}).
//
// Browsers let a push subscription live only while every push shows a
// notification (userVisibleOnly: Chrome shows a generic one instead,
// Safari revokes the subscription after a few), so a tile also shows one
// quiet notification, tagged "tilecast-tile": each tile replaces the last.
'use strict';

const CACHE = 'tilecast';
const TILE_KEY = new URL('tilecast-tile.json', self.registration.scope).href;

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('push', (event) => {
  let msg = null;
  try {
    msg = event.data ? event.data.json() : null;
  } catch (e) {
    msg = null; // not JSON: data for a worker of the app's own
  }
  if (!msg || typeof msg !== 'object') {
    return;
  }
  if (msg.kind === 'toast') {
    event.waitUntil(showToast(msg));
  } else if (msg.kind === 'tile') {
    event.waitUntil(updateTile(msg));
  }
});

// safeURL resolves u against the scope and keeps it only when it is http(s).
function safeURL(u) {
  if (typeof u !== 'string' || u === '') {
    return null;
  }
  try {
    const p = new URL(u, self.registration.scope);
    return p.protocol === 'https:' || p.protocol === 'http:' ? p.href : null;
  } catch (e) {
    return null;
  }
}

function text(v) {
  return typeof v === 'string' ? v : '';
}

async function showToast(msg) {
  const title = text(msg.title) || text(msg.body);
  const options = { body: msg.title ? text(msg.body) : '', data: { url: safeURL(msg.url) } };
  const icon = safeURL(msg.icon);
  if (icon) {
    options.icon = icon;
  }
  if (text(msg.tag)) {
    options.tag = msg.tag;
  }
  await self.registration.showNotification(title, options);
  await tellPages({ type: 'tilecast-toast', title, body: options.body, url: options.data.url });
}

// tellPages posts msg to the app's open pages (the example page shows the
// latest notification and tile from these).
async function tellPages(msg) {
  const pages = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  for (const page of pages) {
    page.postMessage(msg);
  }
}

async function updateTile(msg) {
  const cache = await caches.open(CACHE);
  const old = await cache.match(TILE_KEY);
  const tile = old ? await old.json() : {};
  for (const k of ['title', 'body', 'image', 'url']) {
    if (typeof msg[k] === 'string') {
      tile[k] = msg[k];
    }
  }
  if (Number.isInteger(msg.count) && msg.count >= 0) {
    tile.count = msg.count;
    await setBadge(msg.count);
  }
  tile.updated = Date.now();
  await cache.put(TILE_KEY, new Response(JSON.stringify(tile), { headers: { 'Content-Type': 'application/json' } }));

  const title = text(tile.title) || (tile.count > 0 ? tile.count + ' new' : 'Up to date');
  const options = { body: text(tile.body), tag: 'tilecast-tile', silent: true, data: { url: safeURL(tile.url) } };
  const image = safeURL(tile.image);
  if (image) {
    options.icon = image;
  }
  await self.registration.showNotification(title, options);
  await tellPages({ type: 'tilecast-tile', tile });
}

async function setBadge(count) {
  const nav = self.navigator;
  try {
    if (count > 0 && nav.setAppBadge) {
      await nav.setAppBadge(count);
    } else if (count === 0 && nav.clearAppBadge) {
      await nav.clearAppBadge();
    }
  } catch (e) {
    // Not an installed app, or no badge on this platform: the stored
    // count is still there for the page.
  }
}

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const url = (event.notification.data && event.notification.data.url) || self.registration.scope;
  event.waitUntil((async () => {
    const pages = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    for (const page of pages) {
      if (page.url === url && 'focus' in page) {
        return page.focus();
      }
    }
    return self.clients.openWindow(url);
  })());
});
