public protocol _Placeholder {}
