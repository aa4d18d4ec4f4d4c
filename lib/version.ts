// The build stamps the version in; running from source says "dev".
declare const __ZEDBOX_VERSION__: string | undefined;
export const VERSION: string = typeof __ZEDBOX_VERSION__ === 'string' ? __ZEDBOX_VERSION__ : 'dev';
