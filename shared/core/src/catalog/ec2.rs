//! DescribeInstanceTypes-shaped data.
