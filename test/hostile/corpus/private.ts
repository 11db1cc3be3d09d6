import type { HttpCase } from './case.ts';

export const privateCases: HttpCase[] = [];
