import type { HttpCase } from './case.ts';

export const headerCases: HttpCase[] = [];
