// Registers the custom matchers for every test file.
import { expect } from 'vitest';
import { allCloseMatcher } from './allClose.js';

expect.extend({ toAllClose: allCloseMatcher });
