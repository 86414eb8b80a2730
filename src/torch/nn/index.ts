export * from './module';
export * from './layers';
export * as init from './init';
